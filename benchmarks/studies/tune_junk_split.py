"""The junk split (``junk_split.py``) on TUNING-half cells, before and after.

    python benchmarks/tune_junk_split.py --picked --seed 10          # demo-like DoG picks
    python benchmarks/tune_junk_split.py --structures 5 --seed 0     # simulated subtomograms
    python benchmarks/tune_junk_split.py --half report --structures 5 --seed 0 --position 0.3

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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tuning_cell import add_cell_arguments, load_cell  # noqa: E402  (beside this script)
from tune_polish_picked import picked_boxes, show  # noqa: E402
from bench_accuracy import cell_tag  # noqa: E402


def main():
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
    args = ap.parse_args()
    from disca_engine.clustering import alignment, presets, seeding
    from disca_engine.clustering.dataset import ParticleSet
    from disca_engine.clustering.junk_split import null_scores, own_scores, split_low_groups
    from disca_engine.simulate.templates import structure_set

    if args.clusters_star:
        parts, truth, labels = finished_run(args.clusters_star, args.truth_star)
        names = sorted(set(truth.tolist()) - {"junk"})
    elif args.picked:
        names = structure_set("tuning", args.structures, args.seed)
        boxes, truth = picked_boxes(os.path.join(args.work, f"picked{args.seed}"), names,
                                    args.seed)
        parts = ParticleSet(None, None, boxes)
    else:
        names, parts, truth = load_cell(args, args.work, args.junk, args.half)
        names = list(range(1, len(names) + 1))
    cfg = presets.resolve("auto", seed=args.seed, threads=1, align_junk_split=0.0)  # before
    z = seeding.invariant_space(parts, cfg, args.seed)
    if not args.clusters_star:
        labels = cached_labels(args, parts, z, cfg)
    stack, grid = alignment.aligned_stack(parts, cfg)
    t0 = time.time()
    scores, refs = own_scores(stack, labels, z, grid)
    null = null_scores(stack, labels, refs, grid)
    seconds = time.time() - t0
    min_size = int(cfg["min_subtomograms_per_cluster"])
    # every group BIC finds, with its position (no threshold), then the step at --position
    # and --spectrum
    split, splits = split_low_groups(scores, labels, min_size, seed=args.seed, null=null,
                                     position=np.inf)
    with_null = split_low_groups(scores, labels, min_size, seed=args.seed, null=null,
                                 position=args.position, spectrum=args.spectrum)[0]
    print(f"{names}: {parts.n} boxes" + (f", {np.sum(truth == 'junk')} junk" if args.picked
                                         else "") + f" (scores and null scores {seconds:.0f} s, "
          f"one thread)", flush=True)

    show("default", truth, labels, names, 10)
    show("split", truth, split, names, 10)
    show("with null", truth, with_null, names, 10)
    for c, n_hi, n_lo, s_hi, s_lo, position, null_ratio in splits:
        kept = np.flatnonzero(labels == c)
        ratio = merge_ratio(stack, kept, split[kept] != c, refs[c], grid, cfg)
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


def cached_labels(args, parts, z, cfg):
    """The default classification without the junk split, cached under ``--work``."""
    from disca_engine.clustering import alignment, seeding
    seeds = seeding.seed_labels(z, seeding.seed_k(cfg, parts.n), args.seed,
                                min_size=int(cfg["min_subtomograms_per_cluster"]))
    cache = os.path.join(args.work, "labels_" + cell_tag(
        "picked" if args.picked else args.half, args.structures, args.seed, args.snr, args.tilt,
        args.n_per_class, args.junk) + ".npy")
    if os.path.exists(cache):
        return np.load(cache)
    labels = alignment.classify(parts, seeds, z, cfg, log=lambda m: None)[0]
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


def merge_ratio(stack, members, low, ref, grid, cfg):
    """The merge test's ratio of the two groups' averages (upper, lower) of one class."""
    from disca_engine.clustering import alignment
    sub = stack.subset(members)
    _, rot, shift, _ = alignment.align(sub, ref[None], grid)
    refs, h1, h2, counts = alignment.averages(sub, low.astype(np.int64), rot, shift, 2)
    return float(alignment._ratios(sub, grid, refs, h1, h2, counts, cfg)[0, 1])


if __name__ == "__main__":
    main()
