"""Tune the alignment classification of the `auto` preset on the TUNING half only.

    python benchmarks/studies/tune_alignment.py --structures 5 --seed 0 \\
        --settings '{"merge_test": {"threshold": 0.9}}'

Simulates a structure set drawn from the tuning half of ``TEMPLATE_HALVES`` (never the report
half), makes the seed clusters as `auto` does, runs the classification stages after them
alone (alignment, merge test, relabelling, junk split, as ``pipeline.classes_from_seeds``
runs them on a cell below ``alignment.max_n``; no network, so a setting costs minutes), and
prints the pair ratios of clusters whose majority structure is the same ("SAME") against
the highest ratios of clusters of different structures ("DIFF") at the first merge test
(the classes of the alignment rounds) and of the classes the merge tests leave, then K,
homogeneity and completeness against the truth and the composition of every cluster. The
merge tests in between are the engine's log lines (pairs merged, highest ratio). The
threshold (``settings.MergeTest``) was chosen from these lines (docs/clustering-history.md,
"What was tried"), when SAME/DIFF was printed at every merge test.
"""
import argparse
import collections
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..")]  # benchmarks/, repository
from tuning_cell import add_cell_arguments, load_cell  # noqa: E402  (beside this script)


def log(message):
    print(message, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(ap)
    ap.add_argument("--junk", type=float, default=0.0, help="fraction of junk boxes")
    ap.add_argument("--settings", default="{}", help="JSON of settings to override (settings."
                    "resolve's names, e.g. '{\"alignment\": {\"rotations\": 300}}')")
    ap.add_argument("--work", default="tune-alignment-work")
    ap.add_argument("--seeding-seed", type=int, default=None,
                    help="random seed of the seed k-means only (default --seed): the same data "
                         "seeded differently, to see how much one cell moves by chance")
    ap.add_argument("--save-labels", default=None,
                    help="write the seeds, final labels and truth to this .npz (for studies of "
                         "a step after the classification, e.g. benchmarks/studies/tune_polish.py)")
    args = ap.parse_args()
    from sklearn.metrics import adjusted_rand_score, completeness_score, homogeneity_score
    from auto_seeds import descriptors_of, seed_clusters
    from disca_engine import settings as S

    names, parts, truth = load_cell(args, args.work, args.junk)
    request = S.resolve("auto", **json.loads(args.settings))
    t0 = time.time()
    seeding_seed = args.seed if args.seeding_seed is None else args.seeding_seed
    z = descriptors_of(parts, request.method, seeding_seed)
    seeds = seed_clusters(z, request.method, seeding_seed)
    print(f"{names}: N {parts.n}, seeds K {seeds.max() + 1}, homogeneity "
          f"{homogeneity_score(truth, seeds):.3f}", flush=True)
    labels = classify(parts, seeds, z, request, truth)
    print(f"RESULT K {labels.max() + 1} (true {len(names)}) homogeneity "
          f"{homogeneity_score(truth, labels):.3f} completeness {completeness_score(truth, labels):.3f} "
          f"ARI {adjusted_rand_score(truth, labels):.3f} "
          f"({time.time() - t0:.0f} s)")
    for c in range(labels.max() + 1):
        print(c + 1, dict(collections.Counter(truth[labels == c].tolist())))
    if args.save_labels:
        np.savez(args.save_labels, seeds=seeds, labels=labels, truth=truth, z=z,
                 settings=args.settings)


def classify(parts, seeds, z, request, truth):
    """The stages after the seeds, with SAME/DIFF of the first merge test and of the merged
    classes (each scored once more for the print: ``merge_test.merge`` keeps no ratios)."""
    from disca_engine.clustering.stages import alignment, junk_split, merge_test, relabel
    method, threads, seed = request.method, request.options.threads, request.options.seed
    c, min_size = method.classification, method.min_cluster_size
    if alignment.subsample(parts.n, c.alignment, seed, log) is not None:
        raise SystemExit("the cell is larger than alignment.max_n: this study runs the stages "
                         "on all of it")
    classes = alignment.refine(parts, seeds, z, c.alignment, min_size, threads, log)
    print_same_diff(classes, truth, c.merge_test)
    classes = merge_test.merge(classes, c.merge_test, c.alignment, min_size, log)
    if sum("merge_test" in h for h in classes.history) > 1:
        print_same_diff(classes, truth, c.merge_test, "after the merge tests: ")
    if c.relabel:
        classes = relabel.relabel(classes, z, seed, min_size, log)
    if c.junk_split is not None:
        classes = junk_split.split(classes, z, c.junk_split, seed, min_size, log)
    return classes.labels


def print_same_diff(classes, truth, settings, label=""):
    """SAME and DIFF pair ratios (module docstring) of the references of ``classes``."""
    from disca_engine.clustering.align.pairs import pair_ratios
    ratio = pair_ratios(classes.stack, classes.refs, *classes.halves, classes.grid,
                        settings.pose_shift, settings.pose_top)
    lab, k = classes.labels, classes.k
    major = [np.bincount(truth[lab == c]).argmax() for c in range(k)]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    same = sorted(round(float(ratio[i, j]), 2) for i, j in pairs if major[i] == major[j])
    diff = sorted(round(float(ratio[i, j]), 2) for i, j in pairs if major[i] != major[j])
    print(f"   {label}SAME {same}  DIFF highest {diff[-6:]}", flush=True)


if __name__ == "__main__":
    main()
