"""What the classification stages hand on to each other."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Classes:
    """A classification in progress: the aligned data (``stack``, rotation ``grid``), the
    labels, the references of the classes, their half-set averages and each member's pose
    on its class's reference (None where no later step needs them), and the record of
    every round and test (``history``, for the report)."""
    stack: object
    grid: np.ndarray
    labels: np.ndarray
    refs: np.ndarray = None
    halves: tuple = None
    history: list = field(default_factory=list)
    rot: np.ndarray = None
    shift: np.ndarray = None

    @classmethod
    def of_fit(cls, stack, grid, fit, history):
        """The classes alignment rounds (``align.rounds.Fit``) left."""
        return cls(stack, grid, fit.labels, fit.refs, fit.halves, history, fit.rot, fit.shift)

    @property
    def k(self):
        return int(self.labels.max()) + 1

    def sizes(self):
        return np.bincount(self.labels).tolist()
