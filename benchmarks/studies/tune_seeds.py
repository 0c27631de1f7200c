"""How pure the default method's seed clusters are, on the TUNING half only, per descriptor
variant: seconds per structure set (no alignment, no network), so descriptor ideas can be
screened before the minutes-long alignment runs of ``tune_alignment.py``.

    python benchmarks/studies/tune_seeds.py --structures 5 --seeds 0,1,2 --tilts 60,40 \
        --variants default,no_angular,degree2

Variants (``invariants.py``): ``default``; ``no_angular`` (radial power spectrum and density
profile only); ``degree2`` / ``degree24`` (angular power of degree 2 / degrees 2 and 4 only:
fewer spherical-harmonic coefficients fitted on the measured directions). Prints the seed K
and homogeneity/ARI of every set and variant, then the means per tilt and variant (seeds are
over-split on purpose: homogeneity is what matters, ARI shows the K differences).
"""
import argparse
import contextlib
import io
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..")]  # benchmarks/, repository

DEGREE_VARIANTS = {"degree2": (2,), "degree24": (2, 4)}


def seed_homogeneity(data, truth, variant, seed):
    """(seed K, homogeneity, ARI) of the seed clusters `auto` makes with that descriptor."""
    from sklearn.metrics import adjusted_rand_score, homogeneity_score
    from auto_seeds import descriptors_of, seed_clusters
    from disca_engine import settings as S
    from disca_engine.clustering import invariants
    from disca_engine.clustering.dataset import ParticleSet
    method = S.resolve("auto", descriptors={"angular": variant != "no_angular"}).method
    # the degrees are no setting of the descriptors: the module's constant, for this call
    saved = invariants.DEGREES
    invariants.DEGREES = DEGREE_VARIANTS.get(variant, saved)
    try:
        z = descriptors_of(ParticleSet(None, None, data), method, seed)
    finally:
        invariants.DEGREES = saved
    labels = seed_clusters(z, method, seed)
    return int(labels.max()) + 1, homogeneity_score(truth, labels), adjusted_rand_score(truth, labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--structures", default="5")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--tilts", default="60,40")
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--n-per-class", type=int, default=40)
    ap.add_argument("--variants", default="default,no_angular,degree2,degree24")
    args = ap.parse_args()
    from disca_engine.simulate import generate_subtomograms
    from disca_engine.simulate.templates import structure_set
    variants = args.variants.split(",")
    means = {}
    for s in map(int, args.structures.split(",")):
        for seed in map(int, args.seeds.split(",")):
            names = structure_set("tuning", s, seed)
            for tilt in map(float, args.tilts.split(",")):
                with contextlib.redirect_stdout(io.StringIO()):
                    g = generate_subtomograms(names, args.n_per_class, snr=args.snr, tilt=tilt,
                                              seed=seed)
                data = g["data"].astype(np.float32)
                data = (data - data.mean(axis=(1, 2, 3), keepdims=True)) / \
                    data.std(axis=(1, 2, 3), keepdims=True)
                truth = np.asarray(g["labels"])
                cells = []
                for v in variants:
                    k, h, ari = seed_homogeneity(data, truth, v, seed)
                    means.setdefault((tilt, v), []).append((h, ari))
                    cells.append(f"{v} K {k} {h:.3f}/{ari:.3f}")
                print(f"S {s} seed {seed} tilt +-{tilt:g} SNR {args.snr:g}: " + "; ".join(cells),
                      flush=True)
    for (tilt, v), hs in sorted(means.items()):
        h, ari = np.mean(hs, axis=0)
        print(f"mean seed homogeneity / ARI, tilt +-{tilt:g}, {v}: {h:.3f} / {ari:.3f} over "
              f"{len(hs)} sets")


if __name__ == "__main__":
    main()
