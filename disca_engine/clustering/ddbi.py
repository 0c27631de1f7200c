"""Distortion-based Davies-Bouldin index (DDBI), DISCA's model-selection score.

    D = (1/K) sum_i max_{j != i} (t_i + t_j) / (d_ij + d_ji)
    t_i  = mean over members x of (x - c_i)^T S_i^-1 (x - c_i)
    d_ij = (c_i - c_j)^T S_i^-1 (c_i - c_j)

c_i is the centroid and S_i the covariance (unbiased, ``ddof=1``) of cluster i. Lower
is better. Choices (not fixed by the paper):
- Singular or ill-conditioned covariances (fewer members than dimensions, flat
  directions) get a small ridge ``ridge * mean(diag(S_global))`` added to the diagonal
  before inversion, so the index stays finite and scale-invariant.
- A cluster with fewer than 2 members has no covariance of its own; it uses the
  covariance of the whole data set (its t_i is 0). Giving it a ridge-only covariance
  instead would make its distances huge and reward degenerate one-member clusters.
- With fewer than 2 clusters the index is undefined; ``inf`` is returned so such a
  solution is never preferred to a real one.
"""
import numpy as np


def _inverse(cov, ridge_value):
    d = cov.shape[0]
    w, v = np.linalg.eigh(cov + ridge_value * np.eye(d))
    w = np.maximum(w, np.finfo(float).tiny)
    return (v / w) @ v.T


def cluster_statistics(X, labels, ridge=1e-6):
    """Centroids, inverse covariances and distortions t_i for the clusters present in
    ``labels`` (sorted label order)."""
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (X.shape[0],):
        raise ValueError(f"X must be (N, d) and labels (N,), got {X.shape} and {labels.shape}")
    d = X.shape[1]
    global_cov = np.atleast_2d(np.cov(X, rowvar=False)) if X.shape[0] > 1 else np.eye(d)
    scale = float(np.mean(np.diag(global_cov))) or 1.0
    ridge_value = ridge * scale
    classes = np.unique(labels)
    centroids = np.empty((classes.size, d))
    inverses = np.empty((classes.size, d, d))
    t = np.empty(classes.size)
    for n, c in enumerate(classes):
        members = X[labels == c]
        centroids[n] = members.mean(axis=0)
        cov = np.atleast_2d(np.cov(members, rowvar=False)) if len(members) >= 2 else global_cov
        inverses[n] = _inverse(cov, ridge_value)
        diff = members - centroids[n]
        t[n] = np.mean(np.einsum("ij,jk,ik->i", diff, inverses[n], diff))
    return classes, centroids, inverses, t


def ddbi(X, labels, ridge=1e-6):
    """DDBI of hard ``labels`` on features ``X`` (N, d); lower means better separated."""
    classes, c, inv, t = cluster_statistics(X, labels, ridge)
    k = classes.size
    if k < 2:
        return float("inf")
    diff = c[:, None, :] - c[None, :, :]                  # (K, K, d): c_i - c_j
    d = np.einsum("ijd,ide,ije->ij", diff, inv, diff)      # d_ij uses S_i^-1
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (t[:, None] + t[None, :]) / (d + d.T)    # coincident centroids: inf
    ratio[np.isnan(ratio)] = np.inf                      # 0/0: two identical point clusters
    np.fill_diagonal(ratio, -np.inf)
    return float(np.mean(ratio.max(axis=1)))
