"""How separable the real ribosomes and like-real boxes of another structure are when the
classes are KNOWN: an upper bound for any method that is not told them.

    python benchmarks/studies/real_mixed_oracle.py --other tric --seeds 0,1,2

For each seed it builds the set of ``bench_real.py --mixed`` (40 real ribosomes, 40 boxes
of ``--other`` simulated like the real ones), sees it through the default's particle mask,
and then, with the true labels:

- **held-out assignment**: each class's two half-set averages refined apart
  (``align.evidence.independent_halves``); every box is scored against the half of its own
  class it is not in and against the same-numbered half of the other class (neither
  average contains it) and goes to the better one. Its accuracy is what class averages
  made of 20 boxes can tell one box apart by, the quantity a classification by alignment
  depends on; the merge test's z of the true pair is printed beside it.
- **truth as the start**: the default's alignment rounds started from the true labels;
  the purity they keep says whether the truth is a fixed point of the hard-EM rounds.
"""
import argparse
import contextlib
import io
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", ".."))


def masked_particles(star, threads):
    from disca_engine import settings as S
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.clustering.stages import descriptors, mask
    method = S.resolve("auto", threads=threads).method
    c = method.classification
    particles = mask.apply(load_particles(star, progress=False), c.mask, lambda m: None)
    z = descriptors.describe(particles, c.descriptors, method.network.batch_size, 0,
                             lambda m: None)
    return particles, z, method


def held_out(particles, truth0, z, method, threads):
    """(accuracy, z of the true pair): every box assigned, by held-out half averages of
    the true classes, to the class whose half without it it matches best."""
    from disca_engine.clustering.align.averages import class_references
    from disca_engine.clustering.align.evidence import (evidence_matrix, half_parts,
                                                       half_scores, independent_halves)
    from disca_engine.clustering.stages.alignment import aligned_data
    stack, grid = aligned_data(particles, method.classification.alignment, threads)
    _, halves, _, _ = class_references(stack, truth0, z, grid)
    halves = independent_halves(stack, grid, truth0, halves)
    scores = half_scores(stack, grid, halves)
    k, part = scores.shape[1] // 2, half_parts(truth0)
    other_half = (1 - part) * k            # the half each box is not in, of every class
    own = scores[np.arange(len(truth0)), other_half + truth0]
    rival = scores[np.arange(len(truth0)), other_half + (1 - truth0)]
    return float((own > rival).mean()), float(evidence_matrix(scores, truth0)[0, 1, 0])


def truth_start(particles, truth0, z, method, threads):
    """Purity of each class after the default's alignment rounds started from the truth."""
    from disca_engine.clustering.stages.alignment import refine
    classes = refine(particles, truth0, z, method.classification.alignment,
                     method.min_cluster_size, threads, lambda m: None)
    lab = classes.labels
    return [round(float(np.bincount(truth0[lab == c]).max() / (lab == c).sum()), 3)
            for c in range(classes.k)], classes.sizes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--other", default="tric")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from bench_real import mixed_star
    truth0 = np.asarray([0] * 40 + [1] * 40)
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as folder:
            star = mixed_star(folder, args.other, seed)
            with contextlib.redirect_stdout(io.StringIO()):
                particles, z, method = masked_particles(star, args.threads)
                acc, zt = held_out(particles, truth0, z, method, args.threads)
                purity, sizes = truth_start(particles, truth0, z, method, args.threads)
        print(f"seed {seed}, real ribosomes + like-real {args.other}: held-out assignment "
              f"accuracy {acc:.3f}, merge-test z of the true pair {zt:.1f}; rounds from the "
              f"truth: sizes {sizes}, purity {purity}", flush=True)


if __name__ == "__main__":
    main()
