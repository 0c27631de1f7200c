"""Apply the two-view relabelling (``relabel``) to the labels of finished accuracy cells.

    python benchmarks/studies/polish_existing.py benchmarks/results/accuracy_dis_report_seed0.json \
        --work /tmp/disca_acc_dis --label dis --out benchmarks/results/accuracy_polish_report_seed0.json

The relabelling runs after the alignment classification and changes nothing before it, and
the later iterations keep their labels. So a run with ``relabel`` ends with the labels this
script computes from a finished run without it (``--no-relabel``; the junk split, which
comes after the relabelling, off in both): the same stage (``stages.relabel.relabel``) on
the same subtomograms, descriptors (same seed) and labels. Each cell of the given result
files is read back from its work folder (``<work>/<preset>_<label>_<tag>``, as
``bench_accuracy.py`` wrote it); the rows written are those of ``bench_accuracy.py`` with
DISCA's scores, K and minutes replaced (``minutes`` = the original run's plus this step's)
and the original scores kept under ``without_polish``.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..")]  # benchmarks/, repository
from bench_accuracy import cell_tag, scores  # noqa: E402  (in benchmarks/)


def tag_of(r):
    return cell_tag(r["half"], r["n_structures"], r["seed"], r["snr"], r["tilt"], r["n_per_class"],
                    r["junk"])


def polish_cell(r, work, label, threads):
    from auto_seeds import descriptors_of
    from disca_engine import settings as S
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.clustering.stages import alignment, relabel
    from disca_engine.clustering.stages.state import Classes
    from disca_engine.io.star import read_star
    run = os.path.join(work, f"{r['preset']}_{label}_{tag_of(r)}")
    star = os.path.join(work, "sim_" + tag_of(r), "particles.star")
    truth = np.asarray(read_star(star).column("discaTrueClass", int, star))
    labels = np.asarray(read_star(os.path.join(run, "clusters.star")).column("rlnClassNumber", int)) - 1
    settings = dict(r["settings"], threads=threads, relabel=True)
    method = S.resolve(r["preset"], seed=r["seed"], **settings).method
    t0 = time.time()
    parts = load_particles(star, progress=False)
    z = descriptors_of(parts, method, r["seed"])
    stack, grid = alignment.aligned_data(parts, method.classification.alignment, threads)
    lines = []
    new = relabel.relabel(Classes(stack, grid, labels), z, r["seed"], method.min_cluster_size,
                          lines.append).labels
    minutes = (time.time() - t0) / 60
    junk_class = r["n_structures"] if r["junk"] else None
    out = dict(r, settings=settings, k_found=int(new.max()) + 1,
               disca=scores(truth, new, junk_class), without_polish=r["disca"],
               minutes=round(r["minutes"] + minutes, 2), polish_minutes=round(minutes, 2),
               polish_log=lines, load_average=os.getloadavg())
    for key in ("chosen_iteration", "iterations", "trajectory_k_homogeneity_ddbi", "log_tail"):
        out.pop(key, None)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", help="JSON files of bench_accuracy.py")
    p.add_argument("--work", required=True, help="its --work folder")
    p.add_argument("--label", required=True, help="its --label")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    rows = []
    for path in args.results:
        with open(path) as fh:
            data = json.load(fh)
        for r in data["rows"]:
            rows.append(polish_cell(r, args.work, args.label, args.threads))
            d, w = rows[-1]["disca"], rows[-1]["without_polish"]
            print(f"{tag_of(r)}: K {rows[-1]['k_found']} homogeneity {w['homogeneity']:.3f} -> "
                  f"{d['homogeneity']:.3f}, ARI {w['ari']:.3f} -> {d['ari']:.3f} "
                  f"({rows[-1]['polish_minutes']:.1f} min)", flush=True)
            with open(args.out, "w") as fh:
                json.dump({"argv": sys.argv, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
