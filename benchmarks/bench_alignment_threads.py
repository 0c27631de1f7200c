"""Wall time of the alignment classification with 1 and with W threads, side by side.

    python benchmarks/bench_alignment_threads.py --structures 5 --n-per-class 40 --threads 2 \
        --out benchmarks/results/alignment_threads.json

Simulates a structure set of the tuning half, makes the seed clusters of the `auto` preset,
and runs the stages after them (``pipeline.classes_from_seeds``: rotation scans, averages,
merge tests, relabelling, junk split) once with ``threads=1`` and once with ``threads=W``,
alternating (1, W, 1, W with ``--repeats 2``), so a change in the machine's load hits both.
Checks that the labels and the round-by-round history are identical, and reports the ratio
of the wall times. OpenBLAS/OMP are not limited here: what the threads add is measured
against the engine as a user runs it.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--structures", type=int, default=5)
    ap.add_argument("--n-per-class", type=int, default=40)
    ap.add_argument("--snr", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work", default="/tmp/disca_bench_threads")
    ap.add_argument("--out")
    args = ap.parse_args()
    from auto_seeds import descriptors_of, quiet, seed_clusters   # beside this script
    from disca_engine import settings as S
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.clustering.pipeline import classes_from_seeds
    from disca_engine.simulate import simulate_subtomograms
    from disca_engine.simulate.templates import structure_set

    names = structure_set("tuning", args.structures, 0)
    with contextlib.redirect_stdout(io.StringIO()):
        star = simulate_subtomograms(args.work, classes=",".join(names), n_per_class=args.n_per_class,
                                     snr=args.snr, tilt=60, size=24, seed=0)
    parts = load_particles(star, progress=False)
    method = S.resolve("auto").method
    z = descriptors_of(parts, method, 0)
    seeds = seed_clusters(z, method, 0)
    times, results = {1: [], args.threads: []}, {}
    for _ in range(args.repeats):
        for threads in (1, args.threads):
            t0 = time.perf_counter()
            classes = classes_from_seeds(parts, seeds, z, method, 0, threads, log=quiet)
            labels, history = classes.labels, classes.history
            times[threads].append(round(time.perf_counter() - t0, 1))
            results[threads] = (labels, [{k: v for k, v in h.items() if k != "seconds"}
                                         for h in history])
    same = bool(np.array_equal(results[1][0], results[args.threads][0])
                and results[1][1] == results[args.threads][1])
    best = {t: min(v) for t, v in times.items()}
    out = {"structures": names, "n": parts.n, "seconds": {str(t): v for t, v in times.items()},
           "speed_up": round(best[1] / best[args.threads], 2), "identical_results": same,
           "k_found": int(results[1][0].max() + 1), "cpus": os.cpu_count(),
           "load_average_after": os.getloadavg(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
           "command": " ".join(["python"] + sys.argv)}
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
    if not same:
        sys.exit("the threaded classification differs from the one-thread one")


if __name__ == "__main__":
    main()
