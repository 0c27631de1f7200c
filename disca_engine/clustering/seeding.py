"""First labels of the default method: over-split clusters of rotation-invariant descriptors.

The first iteration's labels decide what DISCA can still separate (method section 11):
two structures that share a label at iteration 1 are trained together and stay merged.
A network with random weights sees little structure, so the default method seeds the loop
with clusters of rotation-invariant descriptors (``invariants.py``), deliberately
over-split (more clusters than structures are expected): a structure split in two is cheap
(the later mixtures re-join it when the trained features no longer separate the halves),
two structures merged are lost.
"""
import numpy as np

from .invariants import invariant_features


def seed_k(cfg, n):
    """Number of seed clusters: about one per ``seed_per_cluster`` subtomograms, within
    the preset's bounds and the K range."""
    k = int(round(n / float(cfg["seed_per_cluster"])))
    k = min(max(k, int(cfg["seed_k_min"])), int(cfg["seed_k_max"]), max(cfg["k_range"]))
    return max(2, min(k, n // int(cfg["min_subtomograms_per_cluster"])))


def invariant_space(particles, cfg, seed):
    """PCA-reduced invariant descriptors (N, d) used for seeding. Not whitened: the weak
    components are mostly noise and must not weigh as much as the strong ones."""
    from .stats import fit_pca
    x = invariant_features(particles, batch_size=cfg["batch_size"],
                           angular=bool(cfg.get("invariant_angular", True)))
    d = max(2, min(int(cfg["seed_pca"]), x.shape[1], particles.n - 1))
    pca = fit_pca(x, d, seed=seed)
    return pca.transform(x).astype(np.float32)


def _absorb_small(z, labels, min_size):
    """Members of clusters smaller than ``min_size`` join the cluster with the nearest
    centroid among the others; labels made contiguous."""
    ids, labels = np.unique(labels, return_inverse=True)
    sizes = np.bincount(labels)
    big = np.flatnonzero(sizes >= min_size)
    if big.size < 2 <= len(ids):  # keep at least two seed clusters: the two largest
        big = np.sort(np.argsort(sizes)[-2:])
    if 0 < big.size < len(ids):
        centres = np.array([z[labels == c].mean(0) for c in big])
        small = ~np.isin(labels, big)
        d = ((z[small][:, None, :] - centres[None]) ** 2).sum(-1)
        labels = labels.copy()
        labels[small] = big[np.argmin(d, axis=1)]
        _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64)


def seed_labels(z, k, seed, min_size=1):
    """k-means labels of the seed space, contiguous 0..K'-1; members of clusters smaller
    than ``min_size`` join the nearest remaining cluster (a cluster of 1-2 subtomograms
    cannot be trained on, nor tested for merging)."""
    from sklearn.cluster import KMeans
    from .stats import _blas_one_thread
    with _blas_one_thread():
        labels = KMeans(k, n_init=10, random_state=int(seed) % (2 ** 31)).fit_predict(z)
    return _absorb_small(z, labels, min_size)
