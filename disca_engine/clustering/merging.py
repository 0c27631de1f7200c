"""Explicit merge test of the default method: clusters a freshly rotated copy cannot tell apart.

The network is trained to give a subtomogram and a randomly rotated copy of it the same
label (method section 5). Two clusters that hold different structures stay apart under a
new rotation; two clusters that are arbitrary halves of one structure (the seeding
over-splits on purpose) do not: the rotation-invariant part of what the network learnt
cannot separate them, so a fresh rotation of a member lands in either one. For every pair
of clusters (i, j) the test measures the soft confusion

    c_ij = mean over members of i of p_j(rotated copy)  +  the same with i and j swapped

from the classification head on one fresh random rotation of every subtomogram, relative
to how well each cluster recognises its own members (``pair_confusion``), and merges the
most confused pair while that ratio exceeds the threshold (the merged cluster's
confusion is the size-weighted mean of its parts). The test only runs once the head
recognises rotated members of their own cluster clearly above chance
(``confident``): a barely trained head confuses everything and would merge everything.
"""
import numpy as np


def rotated_probabilities(net, particles, k, rng, batch_size):
    """Head probabilities (N, k) of one fresh random rotation of every subtomogram."""
    from .augment import random_rotation_matrices, rotate_volumes
    mats = random_rotation_matrices(particles.n, rng)
    out = np.empty((particles.n, k), np.float32)
    a = 0
    for batch in particles.iter_batches(None, batch_size):
        rot = rotate_volumes(batch, mats[a:a + len(batch)], rng)
        out[a:a + len(batch)] = net.predict_volumes(rot)[:, :k]
        a += len(batch)
    return out


def soft_confusion(labels, proba):
    """M[i, j]: mean probability of class j over the members of cluster i."""
    k = proba.shape[1]
    m = np.zeros((k, k))
    np.add.at(m, labels, proba)
    counts = np.bincount(labels, minlength=k).astype(float)
    return m / np.maximum(counts, 1)[:, None], counts


def pair_confusion(m):
    """r_ij = (M_ij + M_ji) / (M_ii + M_jj): about 1 when a rotated copy lands in either
    cluster as often as in its own, near 0 when the clusters are told apart."""
    d = np.diag(m)
    return (m + m.T) / np.maximum(d[:, None] + d[None, :], 1e-9)


def merge_groups(labels, proba, threshold, factor=1.5):
    """Greedy merges while the most confused pair has r_ij > threshold; returns
    (new_labels contiguous, final groups of old labels, [(merged group, r_ij), ...]).
    Only pairs whose two clusters each recognise their own rotated members above
    ``factor`` x chance are candidates: a cluster the head has not learnt says nothing
    about which other cluster it resembles (measured: one confident junk cluster let a
    global test merge 18 clusters of 5 structures into 2)."""
    m, counts = soft_confusion(labels, proba)
    k0 = proba.shape[1]
    groups = [[i] for i in range(len(counts))]
    merges = []
    while len(groups) > 1:
        pair = pair_confusion(m)
        known = np.diag(m) > factor / k0
        pair[~known, :] = -np.inf
        pair[:, ~known] = -np.inf
        np.fill_diagonal(pair, -np.inf)
        i, j = np.unravel_index(np.argmax(pair), pair.shape)
        if pair[i, j] <= threshold:
            break
        i, j = min(i, j), max(i, j)
        merges.append((groups[i] + groups[j], float(pair[i, j])))
        w = np.array([counts[i], counts[j]])
        m[i] = (w[0] * m[i] + w[1] * m[j]) / w.sum()   # rows: members of the union
        m[:, i] = m[:, i] + m[:, j]                     # columns: probability of either
        counts[i] += counts[j]
        groups[i] = groups[i] + groups[j]
        m, counts = np.delete(np.delete(m, j, 0), j, 1), np.delete(counts, j)
        del groups[j]
    mapping = np.empty(proba.shape[1], np.int64)
    for new, members in enumerate(groups):
        mapping[members] = new
    return mapping[labels], groups, merges


def confident(labels, proba, factor=1.5):
    """Mean probability of the own cluster on rotated copies above ``factor`` x chance."""
    m, _ = soft_confusion(labels, proba)
    return float(np.mean(np.diag(m))) > factor / proba.shape[1]
