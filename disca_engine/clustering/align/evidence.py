"""The evidence that two classes hold different structures: a held-out two-sample test.

Every class average is also made from two halves of its members (``averages``). Each member
is scored, at its best rotation and shift (``scan.score_matrix``), against the half of its
own class it is not in (an average made without it) and against the same-numbered half of
the other class: both scores are maximised over poses alike, and neither average contains
the member, so neither its own noise nor its pose search can favour its own class. If the
two classes hold one structure, a member matches both halves about equally; if they differ,
it matches its own better.

The margin d = score(own half without it) - score(other class's half) is averaged per class
and the two means added: a noisier (smaller) class lowers its members' own scores and
raises the other class's members' other scores, so under one structure the sum stays near 0
whatever the sizes. Divided by its standard error it is ``z``: many held-out boxes that all
prefer their own class give a large ``z``, however noisy each box is.
"""
import numpy as np

from .averages import averages
from .scan import align, score_matrix


def half_parts(labels):
    """Which half-set (0, 1) each member averages into: alternate members of each class,
    as ``averages`` makes them."""
    part = np.zeros(len(labels), np.int64)
    for j in range(int(labels.max()) + 1):
        part[np.flatnonzero(labels == j)[1::2]] = 1
    return part


def independent_halves(stack, grid, labels, halves, rounds=2):
    """Each class's two half-set averages refined apart: the members of each half aligned
    to their own half's average only, ``rounds`` times. Half averages made from members
    aligned to the class's full average carry a little of every member, the other half's
    too: a member then matches its own class's other half better than another class's
    half even when both hold one structure (seen as a bias of 5-13% in the scores)."""
    part = half_parts(labels)
    out = [np.array(h, np.float32, copy=True) for h in halves]
    for c in range(int(labels.max()) + 1):
        for q in (0, 1):
            members = np.flatnonzero((labels == c) & (part == q))
            if len(members) == 0:
                continue
            sub = stack.subset(members)
            for _ in range(rounds):
                _, rot, shift, _ = align(sub, out[q][c][None], grid)
                out[q][c] = averages(sub, np.zeros(len(members), np.int64), rot, shift, 1)[0][0]
    return tuple(out)


def half_scores(stack, grid, halves):
    """(N, 2K) every subtomogram's score against each class's two half-set averages
    (columns: half 1 of classes 0..K-1, then half 2)."""
    return score_matrix(stack, np.concatenate(halves), grid)


def own_other(scores, labels, part, i, j):
    """Scores of the members of class ``i`` against the half of ``i`` without them, and
    against the same-numbered half of class ``j``."""
    k = scores.shape[1] // 2
    members = np.flatnonzero(labels == i)
    other = (1 - part[members]) * k       # the half each member is not in
    return scores[members, other + i], scores[members, other + j]


def evidence(own_i, other_i, own_j, other_j):
    """(z, t, ratio): t the sum of the two classes' mean margins (own - other), z that over
    its standard error, ratio the mean scores against the other class over those against
    the own (about 1 for one structure)."""
    d_i, d_j = own_i - other_i, own_j - other_j
    t = float(d_i.mean() + d_j.mean())
    se = float(np.sqrt(d_i.var(ddof=1) / len(d_i) + d_j.var(ddof=1) / len(d_j)))
    ratio = float((other_i.mean() + other_j.mean()) / max(own_i.mean() + own_j.mean(), 1e-12))
    return t / max(se, 1e-12), t, ratio


def evidence_matrix(scores, labels):
    """(K, K, 3) z, t and ratio of every pair of classes (0 on the diagonal)."""
    part, k = half_parts(labels), int(labels.max()) + 1
    out = np.zeros((k, k, 3))
    for i in range(k):
        for j in range(i + 1, k):
            out[i, j] = out[j, i] = evidence(*own_other(scores, labels, part, i, j),
                                             *own_other(scores, labels, part, j, i))
    return out


def split_evidence(stack, grid, members, rot, shift, rng):
    """z of a random split of one class's ``members`` (with their poses on its average)
    into two classes: what the test gives where the two certainly hold one structure."""
    sub = stack.subset(members)
    labels = rng.permutation(np.arange(len(members)) % 2)
    _, h1, h2, _ = averages(sub, labels, rot[members], shift[members], 2)
    scores = half_scores(sub, grid, (h1, h2))
    return evidence_matrix(scores, labels)[0, 1]
