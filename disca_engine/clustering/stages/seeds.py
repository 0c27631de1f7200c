"""Stage 2: the first labels, over-split k-means clusters of the descriptors.

The first labels decide what can still be separated: two structures that share a seed
cluster are averaged together and stay merged. So the seeds deliberately over-split (more
clusters than structures are expected): a structure split in two is joined again by the
merge test, two structures merged are lost.
"""
import numpy as np

from ..mixtures import blas_one_thread


def seed_k(settings, n, k_range, min_size):
    """Number of seed clusters: about one per ``settings.per_cluster`` subtomograms, within
    the bounds of ``settings`` (``settings.Seeds``) and the K range."""
    k = int(round(n / float(settings.per_cluster)))
    k = min(max(k, settings.k_min), settings.k_max, max(k_range))
    return max(2, min(k, n // min_size))


def seed_labels(z, k, seed, min_size):
    """k-means labels of the descriptors, contiguous 0..K'-1; members of clusters smaller
    than ``min_size`` join the nearest remaining cluster (a cluster of 1-2 subtomograms
    cannot be averaged, nor tested for merging)."""
    from sklearn.cluster import KMeans
    with blas_one_thread():
        labels = KMeans(k, n_init=10, random_state=int(seed) % (2 ** 31)).fit_predict(z)
    return _absorb_small(z, labels, min_size)


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
