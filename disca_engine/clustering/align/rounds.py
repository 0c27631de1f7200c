"""Hard-EM rounds of the alignment classification: assign every subtomogram to its best
reference, re-average, until the labels settle."""
import time
from typing import NamedTuple

import numpy as np

from ..labels import match_labels
from .averages import averages, disattenuation
from .scan import align


class Fit(NamedTuple):
    """What alignment rounds leave: the references (class averages), their half-set
    averages, the labels, and each member's pose on its class average."""
    refs: np.ndarray
    halves: tuple
    labels: np.ndarray
    rot: np.ndarray
    shift: np.ndarray


def rounds(stack, refs, grid, labels, min_size, max_rounds, log, history, disattenuate,
           halves=None, tol=0.02):
    """Hard-EM rounds (assign, re-average) until fewer than ``tol`` of the labels change.
    With ``disattenuate``, scores are compared after ``disattenuation`` of the references
    (from their half-set averages: ``halves`` for the first round, when known)."""
    h1 = h2 = rot = shift = None
    for _ in range(max_rounds):
        t1 = time.time()
        weight = disattenuation(stack, *halves) if disattenuate and halves is not None else None
        new, rot, shift, score = align(stack, refs, grid, weight=weight)
        keep = drop_small(new, min_size)
        if len(keep) < len(refs):  # too few members to average: their members go elsewhere
            refs = refs[keep]
            weight = None if weight is None else weight[keep]
            new, rot, shift, score = reassign(stack, refs, grid, keep, new, rot, shift, score,
                                              weight)
        present, new = np.unique(new, return_inverse=True)
        refs = refs[present]
        changed = matched_change(labels, new)
        labels = new
        refs, h1, h2, _ = averages(stack, labels, rot, shift, len(refs))
        halves = (h1, h2)
        sizes = np.bincount(labels).tolist()
        history.append({"round": len(history) + 1, "k": len(refs), "changed": changed,
                        "mean_score": float(score.mean()), "sizes": sizes,
                        "seconds": round(time.time() - t1, 2)})
        log(f"  alignment round {len(history)}: K={len(refs)} changed={100 * changed:.1f}% "
            f"mean score {score.mean():.3f} sizes=[{','.join(map(str, sizes))}] "
            f"({time.time() - t1:.1f}s)")
        if changed < tol:
            break
    return Fit(refs, (h1, h2), labels, rot, shift)


def drop_small(labels, min_size):
    """Ids of the clusters with at least ``min_size`` members (the largest if none has)."""
    sizes = np.bincount(labels)
    keep = np.flatnonzero(sizes >= min_size)
    return keep if len(keep) >= 1 else np.array([int(np.argmax(sizes))])


def reassign(stack, refs, grid, keep, labels, rot, shift, score, weight=None):
    """After the references ``keep`` alone are kept: the members of the others aligned
    again to them (the rest keep their assignment, which a dropped reference did not win)."""
    index = np.full(int(labels.max()) + 1, -1)
    index[keep] = np.arange(len(keep))
    labels = index[labels]
    orphans = np.flatnonzero(labels < 0)
    if len(orphans):
        out = align(stack.subset(orphans), refs, grid, weight=weight)
        labels[orphans], rot[orphans], shift[orphans], score[orphans] = out
    return labels, rot, shift, score


def matched_change(old, new):
    """Fraction of subtomograms whose cluster changed, after matching the label ids."""
    return float(np.mean(match_labels(new, old) != old))
