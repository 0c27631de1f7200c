"""Cost of DISCA's E-step at scale: PCA of the features and the BIC sweep over K.

Synthetic data: a K_true-component Gaussian mixture in 16 dimensions (unequal weights,
random full covariances, moderately separated means), like PCA(16) features. For every N
the sweep K = 2..20 is timed with subsampling (select K on 20,000 samples, refit the
winner on all N; the default of select_k) and without it, and the chosen K is printed so
one can see it does not change. BLAS runs on one thread inside select_k.

Usage: python benchmarks/bench_stats.py [--sizes 2000,20000,200000] [--full-max 200000]
       [--n-init 1] [--k-true 8]
``--full-max``: largest N for which the full (non-subsampled) sweep is run.
"""
import argparse
import contextlib
import io
import os
import time

import numpy as np

from disca_engine.clustering.stats import fit_pca, select_k


def synthetic(n, k_true=8, d=16, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 2.5, (k_true, d))
    covs = []
    for _ in range(k_true):
        a = rng.normal(size=(d, d)) / np.sqrt(d)
        covs.append(0.3 * a @ a.T + 0.2 * np.eye(d))
    w = rng.dirichlet(np.full(k_true, 5.0))
    y = rng.choice(k_true, n, p=w)
    x = np.empty((n, d))
    for k in range(k_true):
        m = y == k
        x[m] = rng.multivariate_normal(means[k], covs[k], m.sum())
    return x, y


def sweep(x, max_fit, n_init):
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        mixture, bics = select_k(x, range(2, 21), seed=0, n_init=n_init, max_fit_samples=max_fit)
    return time.perf_counter() - t0, mixture.k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2000,20000,200000")
    ap.add_argument("--full-max", type=int, default=200000)
    ap.add_argument("--n-init", type=int, default=1)
    ap.add_argument("--k-true", type=int, default=8)
    args = ap.parse_args()
    print(f"cpu count {os.cpu_count()}; K = 2..20; n_init {args.n_init}; 16-D mixture with K_true = {args.k_true}")
    x, _ = synthetic(20000, d=1024, k_true=args.k_true, seed=1)
    x = x.astype(np.float32)
    t0 = time.perf_counter()
    fit_pca(x, 16)
    t_ours = time.perf_counter() - t0
    from sklearn.decomposition import PCA
    t0 = time.perf_counter()
    PCA(16, svd_solver="covariance_eigh").fit(x)
    t_sk = time.perf_counter() - t0
    print(f"\nPCA(16) of 20,000 x 1024 float32: fit_pca {t_ours:.2f} s; "
          f"sklearn PCA(svd_solver='covariance_eigh') {t_sk:.2f} s\n")
    print("| N | sweep | seconds | chosen K |")
    print("|---|---|---|---|")
    for n in map(int, args.sizes.split(",")):
        x, _ = synthetic(n, k_true=args.k_true)
        if n > 20000:
            t, k = sweep(x, 20000, args.n_init)
            print(f"| {n:,} | K on 20,000-sample subsample, winner refit on all | {t:.1f} | {k} |", flush=True)
        if n <= args.full_max:
            t, k = sweep(x, 0, args.n_init)
            print(f"| {n:,} | full (all samples) | {t:.1f} | {k} |", flush=True)


if __name__ == "__main__":
    main()
