"""The merge test's ratios at the first merge test of a TUNING-half set, under variants.

    python benchmarks/diag_merge_test.py --structures 5 --seed 0 --tilt 40 \\
        --variant 'default={}' --variant 'joint pose={"align_merge_joint": true,
                   "align_merge_min_count": 3, "align_pose_top": 16}'

Runs the default classification up to its first merge test (seeds, alignment rounds), then
scores every pair of clusters with each variant of the merge-test settings and prints the
ratios of pairs whose clusters hold the same majority structure (SAME: these should merge,
ratio about 1) against the highest of pairs of different structures (DIFF: these should stay
below ``align_merge``). Also prints each cluster's size, purity and Fourier coverage. A
variant costs seconds, so merge-test settings are compared on identical clusters; the whole
classification (``tune_alignment.py``) then says what a setting does to the final classes.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tuning_cell import add_cell_arguments, load_cell  # noqa: E402  (beside this script)


class _FirstMergeTest(Exception):
    def __init__(self, state):
        super().__init__("first merge test reached")
        self.state = state


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(ap)
    ap.add_argument("--variant", action="append", default=[],
                    help="label=JSON of merge-test settings (repeatable)")
    ap.add_argument("--work", default="diag-merge-work")
    args = ap.parse_args()
    from disca_engine.clustering import alignment, presets, seeding

    names, parts, truth = load_cell(args, args.work)
    cfg = presets.resolve("auto", threads=1)
    z = seeding.invariant_space(parts, cfg, args.seed)
    seeds = seeding.seed_labels(z, seeding.seed_k(cfg, parts.n), args.seed,
                                min_size=int(cfg["min_subtomograms_per_cluster"]))
    captured = {}

    def stop(stack, grid, state, *_):
        captured.update(stack=stack, grid=grid)
        raise _FirstMergeTest(state)
    alignment._merge_until_stable = stop
    try:
        alignment.classify(parts, seeds, z, cfg, log=lambda m: None)
    except _FirstMergeTest as reached:
        refs, h1, h2, counts, labels = reached.state
    stack, grid = captured["stack"], captured["grid"]
    k = len(refs)
    major = [int(np.bincount(truth[labels == c]).argmax()) for c in range(k)]
    print(f"{names}: N {parts.n}, SNR {args.snr}, tilt +-{args.tilt:g}; first merge test at K {k}, "
          f"wedge {100 * (1 - stack.wedge.mean()):.0f}% of Fourier space")
    for c in range(k):
        size = int((labels == c).sum())
        purity = np.bincount(truth[labels == c]).max() / size
        print(f"  cluster {c + 1}: {size} members, majority {names[major[c] - 1]}, purity "
              f"{purity:.2f}, voxels measured by >= 1 / >= 3 members "
              f"{(counts[c] >= 1).mean():.2f} / {(counts[c] >= 3).mean():.2f}")
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    for spec in args.variant or ["default={}"]:
        label, settings = spec.split("={", 1)       # labels may hold "=", the JSON follows
        variant = dict(cfg, **json.loads("{" + settings))
        ratio = alignment._ratios(stack, grid, refs, h1, h2, counts, variant)
        same = sorted(round(float(ratio[i, j]), 2) for i, j in pairs if major[i] == major[j])
        diff = sorted(round(float(ratio[i, j]), 2) for i, j in pairs if major[i] != major[j])
        print(f"{label}: SAME {same}  DIFF highest {diff[-8:]}", flush=True)


if __name__ == "__main__":
    main()
