"""The two-view relabelling on DoG-picked boxes of simulated tomograms (TUNING half only).

    python benchmarks/studies/tune_polish_picked.py --seed 10 --work /tmp/picked

Like the demo (`scripts/demo.sh`: 3 tomograms of 64 x 200 x 200 at 14 A, 60 particles each,
SNR 0.1, gold and vesicles; DoG picking at 200 A; 24^3 boxes), but with 5 structures drawn
from the tuning half and without Scipion: about half the boxes are junk picks of many kinds,
which the simulated subtomogram cells do not have. Runs the alignment classification
without the relabelling, then the relabelling with several pass caps, and prints
homogeneity, ARI and each structure's share in clusters it dominates (the demo's measure).
"""
import argparse
import contextlib
import io
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..")]  # benchmarks/, repository


def picked_boxes(work, names, seed, box=24, diameter=200.0):
    """(boxes (N, box^3) normalised, truth names per box ('junk' if none within 5 voxels))."""
    from disca_engine.extraction import extract_boxes
    from disca_engine.io.mrc import read_volume
    from disca_engine.io.star import read_star
    from disca_engine.picking.files import pick_file
    from disca_engine.simulate.tomograms import simulate_tomograms
    from disca_engine.simulate.truth import names_of_picks
    with contextlib.redirect_stdout(io.StringIO()):
        paths, truth_star = simulate_tomograms(work, n_tomograms=3, shape=(64, 200, 200),
                                               voxel_A=14.0, classes=",".join(names),
                                               n_particles=60, snr=0.1, seed=seed)
    truth = read_star(truth_star)
    boxes, found = [], []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        result = pick_file(path, os.path.join(work, stem + "_coords.star"), diameter, quiet=True,
                           overwrite=True)
        data, kept = extract_boxes(read_volume(path), result.xyz, box)
        found += names_of_picks([stem] * len(data), result.xyz[kept], truth).tolist()
        boxes.append(data)
    return np.concatenate(boxes), np.array(found)


def held(truth, labels, names):
    """Each structure's share in the clusters where it is the majority (a tie goes to the
    first name in sorted order: a set's order changed from run to run)."""
    out = []
    for n in names:
        major = [c for c in np.unique(labels)
                 if max(np.unique(truth[labels == c]),
                        key=lambda m: np.sum(truth[labels == c] == m)) == n]
        out.append(float(np.mean(np.isin(labels[truth == n], major))))
    return out


def show(name, truth, labels, names, width=24):
    """One line: K, homogeneity, ARI and each structure's share in the clusters it dominates."""
    from sklearn.metrics import adjusted_rand_score, homogeneity_score
    h = held(truth, labels, names)
    print(f"  {name:{width}s} K {labels.max() + 1:2d} homogeneity "
          f"{homogeneity_score(truth, labels):.3f} ARI {adjusted_rand_score(truth, labels):.3f} "
          f"held {' '.join(f'{v:.2f}' for v in h)} (lowest {min(h):.2f})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--work", default="tune-polish-picked")
    ap.add_argument("--caps", default="10,4,3,2,1", help="pass caps of the relabelling")
    args = ap.parse_args()
    from auto_seeds import descriptors_of, quiet, seed_clusters
    from disca_engine import settings as S
    from disca_engine.clustering.align.averages import references_from_labels
    from disca_engine.clustering.align.scan import score_matrix
    from disca_engine.clustering.dataset import ParticleSet
    from disca_engine.clustering.pipeline import classes_from_seeds
    from disca_engine.clustering.stages import alignment, relabel
    from disca_engine.simulate.templates import structure_set

    names = structure_set("tuning", 5, args.seed)
    boxes, truth = picked_boxes(os.path.join(args.work, f"seed{args.seed}"), names, args.seed)
    parts = ParticleSet(None, None, boxes)
    method = S.resolve("auto", seed=args.seed, threads=1, relabel=False).method
    z = descriptors_of(parts, method, args.seed)
    seeds = seed_clusters(z, method, args.seed)
    labels = relabel.canonical(classes_from_seeds(parts, seeds, z, method, args.seed, 1,
                                                  log=quiet).labels)
    stack, grid = alignment.aligned_data(parts, method.classification.alignment, 1)
    refs, weight = references_from_labels(stack, labels, z, grid)
    scores = score_matrix(stack, refs, grid, weight)
    print(f"{names}: {parts.n} boxes, {np.sum(truth == 'junk')} junk", flush=True)

    show("alignment classes", truth, labels, names)
    for cap in map(int, args.caps.split(",")):
        lab, p = relabel.two_view_labels(z, scores, labels, args.seed, method.min_cluster_size,
                                         max_passes=cap)
        show(f"relabelled, cap {cap} ({p})", truth, lab, names)


if __name__ == "__main__":
    main()
