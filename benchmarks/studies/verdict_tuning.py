"""Measure the verdict numbers (``clustering.cluster_quality``) on finished ``cluster``
folders of simulated data and print them beside each cluster's true majority class, to
fix and check the rule of ``clustering.verdicts`` (issue 24, docs/clustering.md).

    python benchmarks/studies/verdict_tuning.py [--plain] RUN_DIR [RUN_DIR ...]

The clusters are measured as ``cluster`` measures them: through the particle mask's crop
(estimated from the data, as a run without ``--particle-diameter-A`` does); ``--plain``
measures the whole boxes (the rule's first version was tuned that way).

A cluster counts as a structure when a simulated structure (not ``junk``) is more than
half of its members."""
import os
import sys

import numpy as np

from disca_engine import contract
from disca_engine import settings as S
from disca_engine.clustering import cluster_quality, verdicts
from disca_engine.clustering.dataset import load_particles
from disca_engine.clustering.stages import mask


def one_run(run_dir, plain=False):
    star = os.path.join(run_dir, contract.CLUSTERS_STAR)
    particles = load_particles(star)
    labels = particles.table.column(contract.CLASS, int, star) - 1
    names = np.array(particles.table.column(contract.TRUE_CLASS_NAME))
    if not plain:
        particles = mask.apply(particles, S.ParticleMask(), print)
    z = np.load(os.path.join(run_dir, "features_pca.npy"))
    quality = cluster_quality.measure(particles, labels, z, S.Alignment(), 1, 0, print)
    sizes = np.bincount(labels).tolist()
    rows = verdicts.cluster_table(quality, sizes, particles.voxel_size)
    right = 0
    for r in rows:
        m = names[labels == r["cluster"] - 1]
        kinds, counts = np.unique(m, return_counts=True)
        major = kinds[np.argmax(counts)]
        is_structure = major != "junk" and counts.max() > len(m) / 2
        ok = (r["verdict"] == verdicts.STRUCTURE) == is_structure
        right += ok
        res = r.get("resolution_A")
        print(f"{os.path.basename(run_dir)} cluster {r['cluster']:>2} n={r['size']:>3} "
              f"major={major:<9}({counts.max() / len(m):.2f}) res={res if res is None else round(res)} "
              f"nyq={r.get('nyquist_limited')} rel={r.get('reliability')} "
              f"null={r.get('null_ratio')} signal={r.get('signal_fraction')} flat={r.get('flatness')} "
              f"-> {r['verdict']:<9} {'ok' if ok else 'WRONG'}")
    print(f"{os.path.basename(run_dir)}: {right} of {len(rows)} clusters right")


if __name__ == "__main__":
    args = sys.argv[1:]
    for d in [a for a in args if a != "--plain"]:
        one_run(d, plain="--plain" in args)
