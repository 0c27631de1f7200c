"""Cost of DISCA's E-step at scale: PCA of the features and the BIC sweep over K.

Synthetic data: a K_true-component Gaussian mixture in 16 dimensions (unequal weights,
random full covariances, moderately separated means), like PCA(16) features. For every N
the sweep K = 2..20 is timed with subsampling (select K on 20,000 samples, refit the
winner on all N; the default of select_k) and without it, and the chosen K is printed so
one can see it does not change. BLAS runs on one thread inside select_k.

Usage: python benchmarks/bench_stats.py [--sizes 2000,20000,200000] [--full-max 200000]
       [--n-init 1] [--k-true 8] [--seeds 0] [--no-pca] [--check-k 8,9]
``--full-max``: largest N for which the full (non-subsampled) sweep is run.
``--seeds``: seeds of the subsampled sweeps (different subsamples and initialisations).
``--check-k``: for the largest N, BIC on all samples of each listed K fitted two ways
(subsample fit refitted on all; de novo fit on all, seed 0), to diagnose a disagreement.
"""
import argparse
import contextlib
import io
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from disca_engine import settings as S  # noqa: E402
from disca_engine.clustering.mixtures import select_k  # noqa: E402
from disca_engine.clustering.pca import fit_pca  # noqa: E402

# the regularisation of the mixtures, the same in every preset
REG_COVAR = S.PRESETS["paper"].feature_pca.reg_covar


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


def sweep(x, max_fit, n_init, seed):
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        mixture, bics = select_k(x, range(2, 21), seed=seed, n_init=n_init, reg_covar=REG_COVAR,
                                 max_fit_samples=max_fit)
    return time.perf_counter() - t0, mixture.k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2000,20000,200000")
    ap.add_argument("--full-max", type=int, default=200000)
    ap.add_argument("--n-init", type=int, default=1)
    ap.add_argument("--k-true", type=int, default=8)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--no-pca", action="store_true")
    ap.add_argument("--check-k", default="")
    args = ap.parse_args()
    print(f"cpu count {os.cpu_count()}; K = 2..20; n_init {args.n_init}; 16-D mixture with K_true = {args.k_true}")
    if not args.no_pca:
        pca_bench(args.k_true)
    print("| N | sweep | seed | seconds | chosen K |")
    print("|---|---|---|---|---|")
    for n in map(int, args.sizes.split(",")):
        x, _ = synthetic(n, k_true=args.k_true)
        if n > 20000:
            for seed in map(int, args.seeds.split(",")):
                t, k = sweep(x, 20000, args.n_init, seed)
                print(f"| {n:,} | K on 20,000-sample subsample, winner refit on all | {seed} | {t:.1f} | {k} |",
                      flush=True)
        if n <= args.full_max:
            t, k = sweep(x, 0, args.n_init, 0)
            print(f"| {n:,} | full (all samples) | 0 | {t:.1f} | {k} |", flush=True)
    if args.check_k:
        check_k(x, [int(k) for k in args.check_k.split(",")])


def check_k(x, ks):
    """``select_k`` of one K: on a 20,000-sample subsample refitted on all (initialised from
    the subsample fit), and on all samples."""
    print(f"\nBIC on all {len(x):,} samples (lower is better):\n")
    print("| K | subsample fit refitted on all | de novo fit on all (seed 0) |")
    print("|---|---|---|")
    for k in ks:
        warm, cold = (select_k(x, [k], seed=0, n_init=1, reg_covar=REG_COVAR,
                               max_fit_samples=limit, progress=False)[0] for limit in (20000, 0))
        print(f"| {k} | {warm.bic(x):,.0f} | {cold.bic(x):,.0f} |", flush=True)


def pca_bench(k_true):
    x, _ = synthetic(20000, d=1024, k_true=k_true, seed=1)
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


if __name__ == "__main__":
    main()
