"""The junk split (``stages/junk_split.py``) on TUNING-half cells, before and after.

    python benchmarks/studies/tune_junk_split.py --picked --seed 10          # demo-like DoG picks
    python benchmarks/studies/tune_junk_split.py --structures 5 --seed 0     # simulated subtomograms
    python benchmarks/studies/tune_junk_split.py --half report --structures 5 --seed 0 --position 0.3

``--half report`` measures the chosen step on the report half's cells (the data of
``bench_accuracy.py``): never use it to choose.

Runs the alignment classification of `auto` with its two-view relabelling (the default),
then applies the junk split to the final labels with the engine's own functions, and prints
K, homogeneity, ARI and each structure's share in the clusters it dominates (the demo's
measure) before and after, with every split's composition. ``--picked`` uses the demo-like
cells of ``tune_polish_picked.py`` (about half of the boxes junk picks); otherwise the
simulated cells of ``tuning_cell.py`` (``--junk`` adds empty boxes, beads and membranes).
"""
import argparse
import collections
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..")]  # benchmarks/, repository
from tuning_cell import add_cell_arguments, load_cell  # noqa: E402  (beside this script)
from tune_polish_picked import picked_boxes, show  # noqa: E402
from bench_accuracy import cell_tag  # noqa: E402  (in benchmarks/)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_cell_arguments(ap)
    ap.add_argument("--picked", action="store_true", help="demo-like DoG-picked cell (tuning)")
    ap.add_argument("--half", default="tuning", choices=["tuning", "report"])
    ap.add_argument("--junk", type=float, default=0.0, help="fraction of junk boxes")
    ap.add_argument("--work", default="tune-junk-split-work")
    ap.add_argument("--clusters-star", help="a finished run's clusters.star (e.g. the demo's): "
                    "its boxes and labels, truth from --truth-star (5 voxels)")
    ap.add_argument("--truth-star", help="the simulation's truth.star for --clusters-star")
    ap.add_argument("--position", type=float, default=0.5,
                    help="split off a lower group only below this position between its null "
                         "score (0) and the upper group (1)")
    ap.add_argument("--spectrum", type=float, default=0.0,
                    help="also split off a lower group whose mean null score is under this "
                         "fraction of the upper group's (position under 0.5); 0: off")
    return ap.parse_args()


def main():
    args = parse_args()
    from auto_seeds import descriptors_of
    from disca_engine import settings as S
    from disca_engine.clustering.stages import alignment
    from disca_engine.clustering.stages.junk_split import null_scores, own_scores, split_low_groups

    names, parts, truth, labels = cell_of(args)
    method = S.resolve("auto", seed=args.seed, threads=1, junk_split=False).method  # before
    z = descriptors_of(parts, method, args.seed)
    if labels is None:
        labels = cached_labels(args, parts, z, method)
    stack, grid = alignment.aligned_data(parts, method.classification.alignment, 1)
    t0 = time.time()
    scores, refs = own_scores(stack, labels, z, grid)
    null = null_scores(stack, labels, refs, grid, seed=0)
    seconds = time.time() - t0
    min_size = method.min_cluster_size
    # every group BIC finds, with its position (no threshold), then the step at --position
    # and --spectrum
    split, splits = split_low_groups(scores, labels, min_size, args.seed, position=np.inf,
                                     spectrum=0.0, null=null)
    with_null = split_low_groups(scores, labels, min_size, args.seed, position=args.position,
                                 spectrum=args.spectrum, null=null)[0]
    print(f"{names}: {parts.n} boxes" + (f", {np.sum(truth == 'junk')} junk" if args.picked
                                         else "") + f" (scores and null scores {seconds:.0f} s, "
          f"one thread)", flush=True)

    show("default", truth, labels, names, 10)
    show("split", truth, split, names, 10)
    show("with null", truth, with_null, names, 10)
    for c, n_hi, n_lo, s_hi, s_lo, position, null_ratio in splits:
        kept = np.flatnonzero(labels == c)
        ratio = merge_ratio(stack, kept, split[kept] != c, refs[c], grid,
                            method.classification.merge_test)
        lo = kept[split[kept] != c]
        kept = kept[split[kept] == c]
        print(f"  class {c + 1}: kept {dict(collections.Counter(truth[kept].tolist()))} "
              f"(mean {s_hi:.2f} sd {scores[kept].std():.3f}, null {null[kept].mean():.2f}) | "
              f"split off {dict(collections.Counter(truth[lo].tolist()))} (mean {s_lo:.2f} sd "
              f"{scores[lo].std():.3f}, null {null[lo].mean():.2f}) position {position:.2f} "
              f"null ratio {null_ratio:.3f} "
              f"merge ratio {ratio:.2f} D {separation(scores[kept], scores[lo]):.2f} "
              f"D(excess) {separation(scores[kept] - null[kept], scores[lo] - null[lo]):.2f}",
              flush=True)


def cell_of(args):
    """(structure names, particles, truth, labels or None: to be classified) of the cell the
    arguments name: a finished run, a DoG-picked cell, or a simulated one."""
    from disca_engine.clustering.dataset import ParticleSet
    from disca_engine.simulate.templates import structure_set
    if args.clusters_star:
        parts, truth, labels = finished_run(args.clusters_star, args.truth_star)
        return sorted(set(truth.tolist()) - {"junk"}), parts, truth, labels
    if args.picked:
        names = structure_set("tuning", args.structures, args.seed)
        boxes, truth = picked_boxes(os.path.join(args.work, f"picked{args.seed}"), names,
                                    args.seed)
        return names, ParticleSet(None, None, boxes), truth, None
    names, parts, truth = load_cell(args, args.work, args.junk, args.half)
    return list(range(1, len(names) + 1)), parts, truth, None


def cached_labels(args, parts, z, method):
    """The default classification without the junk split, cached under ``--work``."""
    from auto_seeds import quiet, seed_clusters
    from disca_engine.clustering.pipeline import classes_from_seeds
    seeds = seed_clusters(z, method, args.seed)
    cache = os.path.join(args.work, "labels_" + cell_tag(
        "picked" if args.picked else args.half, args.structures, args.seed, args.snr, args.tilt,
        args.n_per_class, args.junk) + ".npy")
    if os.path.exists(cache):
        return np.load(cache)
    labels = classes_from_seeds(parts, seeds, z, method, args.seed, 1, log=quiet).labels
    np.save(cache, labels)
    return labels


def finished_run(clusters_star, truth_star, radius=5.0):
    """(particles, truth names ('junk' beyond ``radius`` voxels), 0-based labels) of a
    finished run's clusters.star: with the junk split off, or one that split nothing, its
    labels are the classification before the step."""
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.io.star import read_star
    from disca_engine.simulate.truth import coordinates, names_of_picks
    picks = read_star(clusters_star)
    truth = names_of_picks(picks.column("rlnTomoName"), coordinates(picks),
                           read_star(truth_star), radius)
    labels = np.array(picks.column("rlnClassNumber", int)) - 1
    return load_particles(clusters_star, progress=False), truth.astype(str), labels


def separation(a, b):
    """Ashman's D of two groups of scores: above 2, two clearly separate modes."""
    return float(np.sqrt(2) * abs(a.mean() - b.mean()) / np.sqrt(a.var() + b.var() + 1e-12))


def merge_ratio(stack, members, low, ref, grid, settings):
    """The merge test's ratio (``settings.MergeTest``) of the two groups' averages (upper,
    lower) of one class."""
    from disca_engine.clustering.align.averages import averages
    from disca_engine.clustering.align.pairs import pair_ratios
    from disca_engine.clustering.align.scan import align
    sub = stack.subset(members)
    _, rot, shift, _ = align(sub, ref[None], grid)
    refs, h1, h2, _ = averages(sub, low.astype(np.int64), rot, shift, 2)
    return float(pair_ratios(sub, refs, h1, h2, grid, settings.pose_shift,
                             settings.pose_top)[0, 1])


if __name__ == "__main__":
    main()
