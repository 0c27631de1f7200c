"""M-step bookkeeping of DISCA: label matching, label smoothing, stopping.

When the number of clusters K is unchanged between iterations the new labels are
permuted to agree best with the previous ones (maximum-weight bipartite matching on the
contingency matrix), otherwise the classification head would be trained against
arbitrarily renamed targets every iteration.
"""
import numpy as np
from scipy.optimize import linear_sum_assignment


def _as_labels(labels):
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError("labels must be non-negative integers")
    return labels.astype(np.int64, copy=False)


def contingency(new, old, k_new=None, k_old=None):
    """Counts ``C[i, j]`` of items with new label i and old label j."""
    new, old = _as_labels(new), _as_labels(old)
    k_new = int(k_new if k_new is not None else (new.max() + 1 if new.size else 0))
    k_old = int(k_old if k_old is not None else (old.max() + 1 if old.size else 0))
    c = np.zeros((k_new, k_old), dtype=np.int64)
    np.add.at(c, (new, old), 1)
    return c


def label_permutation(new, old):
    """Mapping ``perm`` (array, new label -> matched label) maximising agreement with ``old``.

    With the same number of classes this is a permutation of ``0..K-1``. With more new
    classes than old ones the unmatched new classes get the next free numbers in their
    original order; with fewer, the matched old numbers are compacted to ``0..K_new-1``
    keeping their order, so the result is always contiguous.
    """
    new, old = _as_labels(new), _as_labels(old)
    c = contingency(new, old)
    k_new, k_old = c.shape
    rows, cols = linear_sum_assignment(c, maximize=True)
    perm = np.full(k_new, -1, dtype=np.int64)
    perm[rows] = cols
    if k_new > k_old:
        unmatched = np.flatnonzero(perm < 0)
        perm[unmatched] = k_old + np.arange(unmatched.size)
    elif k_new < k_old:
        perm = np.argsort(np.argsort(perm))  # ranks: compact, order kept
    return perm


def match_labels(new, old, return_permutation=False):
    """Return ``new`` relabelled to best match ``old`` (Hungarian matching on the
    contingency matrix). ``old`` None or of another length: ``new`` is returned
    unchanged (as a copy). With ``return_permutation`` also return the mapping ``perm``
    (``new_permuted = perm[new]``) so the mixture components can be reordered the same
    way (see ``mixtures.Mixture.reorder``).
    """
    new = _as_labels(new)
    if old is None or np.shape(old) != new.shape or new.size == 0:
        perm = np.arange(new.max() + 1 if new.size else 0)
        return (new.copy(), perm) if return_permutation else new.copy()
    perm = label_permutation(new, old)
    out = perm[new]
    return (out, perm) if return_permutation else out


def label_smoothing(iteration, start=0.2, decay=0.9):
    """Smoothing factor of 0-based ``iteration``: ``start * decay ** iteration``."""
    if iteration < 0:
        raise ValueError("iteration is 0-based and must be >= 0")
    return float(start) * float(decay) ** int(iteration)


def smooth_targets(labels, k, alpha):
    """Training targets ``(1 - alpha) * onehot + alpha / k`` as float32 (N, k)."""
    labels = _as_labels(labels)
    if labels.size and labels.max() >= k:
        raise ValueError(f"label {labels.max()} out of range for k={k}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"label smoothing alpha must be in [0, 1], got {alpha}")
    out = np.full((labels.size, int(k)), alpha / k, dtype=np.float32)
    out[np.arange(labels.size), labels] += np.float32(1.0 - alpha)
    return out


def fraction_changed(new, old):
    """Fraction of items whose label differs (1.0 when ``old`` is None or shapes differ)."""
    if old is None or np.shape(new) != np.shape(old):
        return 1.0
    new, old = np.asarray(new), np.asarray(old)
    if new.size == 0:
        return 0.0
    return float(np.count_nonzero(new != old)) / new.size


class StopRule:
    """DISCA's convergence test.

    An iteration is *stable* when its K equals the previous iteration's K and at least
    ``min_stable`` of the labels (already matched with :func:`match_labels`) equal the
    previous iteration's labels. ``update`` returns True once the last ``patience``
    iterations were all stable, i.e. after ``patience`` consecutive stable transitions
    (``patience + 1`` iterations with the same K). The first iteration is never stable.
    """

    def __init__(self, patience=3, min_stable=0.99):
        if patience < 1:
            raise ValueError("patience must be >= 1")
        self.patience = int(patience)
        self.min_stable = float(min_stable)
        self.prev_k = None
        self.prev_labels = None
        self.stable_count = 0
        self.last_unchanged = None

    def update(self, k, labels):
        labels = np.asarray(labels).copy()
        if self.prev_labels is not None and int(k) == self.prev_k and labels.shape == self.prev_labels.shape:
            self.last_unchanged = 1.0 - fraction_changed(labels, self.prev_labels)
            stable = self.last_unchanged >= self.min_stable - 1e-12  # 99.0% counts as 99%
        else:
            self.last_unchanged = None
            stable = False
        self.stable_count = self.stable_count + 1 if stable else 0
        self.prev_k, self.prev_labels = int(k), labels
        return self.stable_count >= self.patience

    def state(self):
        """Plain-data state for checkpoints (labels as an int array)."""
        return {"patience": self.patience, "min_stable": self.min_stable, "prev_k": self.prev_k,
                "prev_labels": self.prev_labels, "stable_count": self.stable_count}

    @classmethod
    def from_state(cls, state):
        rule = cls(state["patience"], state["min_stable"])
        rule.prev_k = None if state["prev_k"] is None else int(state["prev_k"])
        labels = state["prev_labels"]
        rule.prev_labels = None if labels is None else np.asarray(labels).copy()
        rule.stable_count = int(state["stable_count"])
        return rule
