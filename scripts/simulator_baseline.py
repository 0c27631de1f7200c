#!/usr/bin/env python
"""How hard are the simulated data? A trivial rotation-invariant baseline.

Features per subtomogram: radial intensity profile + log radial power spectrum (both
rotation invariant), standardised, PCA(8), k-means with the true K. Accuracy after
Hungarian matching of clusters to classes, and adjusted Rand index. If this baseline
already separates a setting, a benchmark on it says little about DISCA.

    python scripts/simulator_baseline.py --n-per-class 100 --snr 0.1,0.03,0.01
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from disca_engine.simulate import generate_subtomograms, resolve_classes  # noqa: E402


def invariant_features(data):
    s = data.shape[1]
    ax = np.arange(s) - s // 2
    r = np.sqrt(sum(a ** 2 for a in np.meshgrid(ax, ax, ax, indexing="ij"))).astype(int).ravel()
    f = np.fft.fftfreq(s) * s
    kr = np.sqrt(sum(a ** 2 for a in np.meshgrid(f, f, f, indexing="ij"))).astype(int).ravel()
    nr, nk = np.bincount(r)[: s // 2 + 1], np.bincount(kr)[1: s // 2 + 1]
    out = []
    for v in data:
        prof = np.bincount(r, v.ravel())[: s // 2 + 1] / nr
        ps = np.abs(np.fft.fftn(v)) ** 2
        rps = np.log(np.bincount(kr, ps.ravel())[1: s // 2 + 1] / nk)
        out.append(np.r_[prof, rps])
    f = np.array(out)
    return (f - f.mean(0)) / (f.std(0) + 1e-12)


def accuracy(labels, pred, k):
    from scipy.optimize import linear_sum_assignment
    m = np.zeros((k, max(k, pred.max() + 1)))
    np.add.at(m, (labels, pred), 1)
    i, j = linear_sum_assignment(-m)
    return m[i, j].sum() / len(labels)


def main(argv=None):
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="default,similar,different")
    ap.add_argument("--snr", default="0.1,0.03,0.01")
    ap.add_argument("--n-per-class", type=int, default=100)
    ap.add_argument("--tilt", type=float, default=60.0)
    ap.add_argument("--snr-mode", default="particle")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print("| class set | SNR | N | k-means accuracy | ARI |\n|---|---|---|---|---|")
    for cs in args.sets.split(","):
        k = len(resolve_classes(cs))
        for snr in (float(x) for x in args.snr.split(",")):
            g = generate_subtomograms(cs, args.n_per_class, snr=snr, tilt=args.tilt,
                                      seed=args.seed, snr_mode=args.snr_mode)
            feats = PCA(8, random_state=0).fit_transform(invariant_features(g["data"]))
            pred = KMeans(k, n_init=10, random_state=0).fit_predict(feats)
            print(f"| {cs} | {snr:g} | {len(pred)} | {accuracy(g['labels'], pred, k):.2f} | "
                  f"{adjusted_rand_score(g['labels'], pred):.2f} |", flush=True)


if __name__ == "__main__":
    main()
