"""How the merge test's evidence behaves: the held-out two-sample z of every pair of classes
after the alignment rounds of the default method, beside random splits of each class.

    python benchmarks/studies/k_evidence.py --star tests/data/real/empiar10499_ribosomes/particles.star

Runs the default method's descriptors, seeds and alignment rounds (no merge test), then
prints for every pair of classes its z (``align.evidence``) and each class's majority truth
when the STAR has ``_discaTrueClass``, and for every class the z of ``--splits`` random
splits of its members (the test on classes that certainly hold one structure).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def classes_after_rounds(star, overrides, threads, masked=True):
    from disca_engine import contract, settings as S
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.clustering.stages import alignment, descriptors, mask, seeds
    request = S.resolve("auto", threads=threads, **overrides)
    method = request.method
    c = method.classification
    particles = load_particles(star, progress=False)
    k_range = S.check_k_range(request, particles.n)
    truth = None
    if contract.TRUE_CLASS in particles.table:
        truth = np.asarray(particles.table.column(contract.TRUE_CLASS, int, star))
    if masked:
        particles = mask.apply(particles, c.mask, print)
    z = descriptors.describe(particles, c.descriptors, method.network.batch_size, 0, print)
    k = seeds.seed_k(c.seeds, particles.n, k_range, method.min_cluster_size)
    first = seeds.seed_labels(z, k, 0, method.min_cluster_size)
    classes = alignment.refine(particles, first, z, c.alignment, method.min_cluster_size,
                               threads, print)
    return classes, method, truth


def composition(truth, members):
    if truth is None:
        return f"{len(members)}"
    ids, counts = np.unique(truth[members], return_counts=True)
    return f"{len(members)} (" + ", ".join(f"{i}:{n}" for i, n in zip(ids, counts)) + ")"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--star", required=True)
    ap.add_argument("--settings", default="{}", help="JSON overrides (settings.resolve)")
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-mask", action="store_true", help="boxes as they are (the box's sphere)")
    ap.add_argument("--gold", action="store_true", help="half averages refined apart first")
    args = ap.parse_args()
    from disca_engine.clustering.align.evidence import (evidence_matrix, half_scores,
                                                       independent_halves, split_evidence)
    classes, method, truth = classes_after_rounds(args.star, json.loads(args.settings), args.threads,
                                                 not args.no_mask)
    lab = classes.labels
    threshold, z0 = method.classification.merge_test.threshold, method.classification.merge_test.evidence
    split_z = []
    for i in range(classes.k):
        rng = np.random.default_rng(i)
        zs = [split_evidence(classes.stack, classes.grid, np.flatnonzero(lab == i), classes.rot,
                             classes.shift, rng) for _ in range(args.splits)]
        split_z += [z for z, _, _ in zs]
        print(f"class {i + 1}: {composition(truth, np.flatnonzero(lab == i))}; random splits z/t/ratio "
              + " ".join(f"{z:.2f}/{t:.3f}/{r:.2f}" for z, t, r in zs))
    halves = classes.halves
    if args.gold:
        halves = independent_halves(classes.stack, classes.grid, lab, halves)
    ev = evidence_matrix(half_scores(classes.stack, classes.grid, halves), lab)
    from disca_engine.clustering.align.pairs import pair_ratios
    mt = method.classification.merge_test
    old = pair_ratios(classes.stack, classes.refs, *halves, classes.grid, mt.pose_shift,
                      mt.pose_top)
    calls = {"SAME": [], "DIFF": []}  # True where the rule merges the pair
    for i in range(classes.k):
        for j in range(i + 1, classes.k):
            same = ""
            if truth is not None:
                mi = np.bincount(truth[lab == i]).argmax()
                mj = np.bincount(truth[lab == j]).argmax()
                same = " SAME" if mi == mj else " DIFF"
            z, t, r = ev[i, j]
            print(f"pair {i + 1}-{j + 1}: z {z:.2f} t {t:.4f} ratio {r:.3f} "
                  f"half-set ratio {old[i, j]:.3f}{same}")
            if same:
                calls[same.strip()].append(bool(z < z0 or old[i, j] >= threshold))
    print(rates(split_z, calls, z0))


def rates(split_z, calls, z0):
    """One line: how often the merge rule would keep apart what is one structure (random
    splits of a class: their z alone, so an upper bound; pairs of classes whose majority is
    the same structure) and join what is two (pairs of different majorities)."""
    kept = sum(z >= z0 for z in split_z)
    same, diff = calls["SAME"], calls["DIFF"]
    return (f"RATES random splits kept apart (z >= {z0:g}) {kept}/{len(split_z)}; "
            f"same-structure pairs kept apart {sum(not m for m in same)}/{len(same)}; "
            f"different-structure pairs merged {sum(diff)}/{len(diff)}")


if __name__ == "__main__":
    main()
