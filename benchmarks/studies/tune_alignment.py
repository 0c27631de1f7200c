"""Tune the alignment classification of the `auto` preset on the TUNING half only.

    python benchmarks/tune_alignment.py --structures 5 --seed 0 --settings '{"align_merge": 0.9}'

Simulates a structure set drawn from the tuning half of ``TEMPLATE_HALVES`` (never the report
half), makes the seed clusters as `auto` does, runs ``alignment.classify`` alone (no network,
so a setting costs minutes), and prints, at every merge test, the pair ratios of clusters
whose majority structure is the same ("SAME") against the highest ratios of clusters of
different structures ("DIFF"), then K, homogeneity and completeness against the truth and
the composition of every cluster. The threshold in `presets.py` was chosen from these lines
(docs/clustering.md, "What was tried").
"""
import argparse
import collections
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tuning_cell import add_cell_arguments, load_cell  # noqa: E402  (beside this script)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(ap)
    ap.add_argument("--junk", type=float, default=0.0, help="fraction of junk boxes")
    ap.add_argument("--settings", default="{}", help="JSON of preset settings to override")
    ap.add_argument("--work", default="tune-alignment-work")
    ap.add_argument("--seeding-seed", type=int, default=None,
                    help="random seed of the seed k-means only (default --seed): the same data "
                         "seeded differently, to see how much one cell moves by chance")
    ap.add_argument("--save-labels", default=None,
                    help="write the seeds, final labels and truth to this .npz (for studies of "
                         "a step after the classification, e.g. benchmarks/tune_polish.py)")
    args = ap.parse_args()
    from sklearn.metrics import adjusted_rand_score, completeness_score, homogeneity_score
    from disca_engine.clustering import alignment, presets, seeding

    names, parts, truth = load_cell(args, args.work, args.junk)
    cfg = presets.resolve("auto", **json.loads(args.settings))
    t0 = time.time()
    seeding_seed = args.seed if args.seeding_seed is None else args.seeding_seed
    z = seeding.invariant_space(parts, cfg, seeding_seed)
    seeds = seeding.seed_labels(z, seeding.seed_k(cfg, parts.n), seeding_seed,
                                min_size=int(cfg["min_subtomograms_per_cluster"]))
    print(f"{names}: N {parts.n}, seeds K {seeds.max() + 1}, homogeneity "
          f"{homogeneity_score(truth, seeds):.3f}", flush=True)
    _watch_merge_tests(alignment, truth)
    labels, _ = alignment.classify(parts, seeds, z, cfg, log=lambda m: print(m, flush=True))
    print(f"RESULT K {labels.max() + 1} (true {len(names)}) homogeneity "
          f"{homogeneity_score(truth, labels):.3f} completeness {completeness_score(truth, labels):.3f} "
          f"ARI {adjusted_rand_score(truth, labels):.3f} "
          f"({time.time() - t0:.0f} s)")
    for c in range(labels.max() + 1):
        print(c + 1, dict(collections.Counter(truth[labels == c].tolist())))
    if args.save_labels:
        np.savez(args.save_labels, seeds=seeds, labels=labels, truth=truth, z=z,
                 settings=args.settings)


def _watch_merge_tests(alignment, truth):
    """Print SAME/DIFF pair ratios at every merge test (wraps two module functions)."""
    state = {}
    rounds, merge_pairs = alignment._rounds, alignment.merge_pairs

    def rounds_spy(*a, **k):
        out = rounds(*a, **k)
        state["labels"] = out[-1]
        return out

    def merge_spy(ratio, threshold):
        lab = state["labels"]
        k = len(ratio)
        major = [np.bincount(truth[lab == c]).argmax() for c in range(k)]
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        same = sorted(round(float(ratio[i, j]), 2) for i, j in pairs if major[i] == major[j])
        diff = sorted(round(float(ratio[i, j]), 2) for i, j in pairs if major[i] != major[j])
        print(f"   SAME {same}  DIFF highest {diff[-6:]}", flush=True)
        return merge_pairs(ratio, threshold)

    alignment._rounds, alignment.merge_pairs = rounds_spy, merge_spy


if __name__ == "__main__":
    main()
