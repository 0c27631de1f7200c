"""Training rate inside DISCA's loop next to the bare network's, side by side.

    python benchmarks/bench_loop_rate.py --preset auto --n 200 --threads 1

(a) bare: ``Network.train_batch`` on one fixed random batch, as bench_network.py does;
(b) in the loop: ``network.training.train_network`` over N simulated subtomograms plus one rotated copy
each (batch assembly from the memory-mapped stack, rotations with N(0,1) fill, shuffling,
the last partial batch), one epoch. The ratio (b)/(a) says what the loop's own work costs.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="auto")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out")
    args = p.parse_args()
    from dataclasses import replace
    from disca_engine import settings as S
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.clustering.network import model, runtime, training
    from disca_engine.simulate import simulate_subtomograms
    runtime.configure_runtime(args.threads, None, 0)
    runtime.set_precision("float32")
    method = S.resolve(args.preset, threads=args.threads).method
    net = model.Network(method.network, max(method.k_range), 24, "float32",
                        runtime.make_strategy()[0])
    bs = method.network.batch_size
    x = np.random.default_rng(0).standard_normal((bs, 24, 24, 24)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[np.arange(bs) % 5]
    net.train_batch(x, y)
    t0, done = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        net.train_batch(x, y)
        done += bs
    bare = done / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        star = simulate_subtomograms(os.path.join(tmp, "sim"), classes=5, n_per_class=args.n // 5, seed=0)
        parts = load_particles(star, cache_dir=os.path.join(tmp, "cache"), progress=False)
        labels = np.arange(parts.n) % 5
        one_epoch = replace(method.network, epochs_per_iteration=1)
        training.train_network(net, parts, labels, 5, 0.1, one_epoch, 0, 0)  # trace the partial batch
        t0 = time.perf_counter()
        training.train_network(net, parts, labels, 5, 0.1, one_epoch, 0, 1)
        in_loop = 2 * parts.n / (time.perf_counter() - t0)
    row = {"preset": args.preset, "threads": args.threads, "n": args.n, "batch": bs,
           "bare_train_per_s": round(bare, 2), "in_loop_train_per_s": round(in_loop, 2),
           "ratio": round(in_loop / bare, 3), "load_average": os.getloadavg()}
    print(json.dumps(row))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"argv": sys.argv, "rows": [row]}, fh, indent=1)


if __name__ == "__main__":
    main()
