"""Throughput of the YOPO networks (forward = features in inference mode, and training step
with Nadam) per preset and precision, next to the machine's measured matmul peak.

    nice -n 10 python benchmarks/bench_network.py --box 24 --seconds 8 --out benchmarks/results/network.json

Method section 9 (quiet 2-core Zen 4): paper YOPO forward 14/s float32, 26/s bfloat16;
training 4.2/s and 6.8/s. Prints a markdown table; ``--out`` also writes JSON.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def matmul_gflops(tf, dtype, n=2048, seconds=3.0):
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        f(a).numpy()
        reps += 1
    return 2.0 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def rate(fn, batch, seconds):
    fn()  # trace + warm up
    fn()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or reps < 2:
        fn()
        reps += 1
    return batch * reps / (time.perf_counter() - t0)


def bench(preset, precision, box, batch, seconds):
    from disca_engine import settings as S
    from disca_engine.clustering.network import model, runtime, yopo
    runtime.set_precision(precision)
    method = S.resolve(preset, batch_size=batch).method
    net = model.Network(method.network, max(method.k_range), box, precision,
                        runtime.make_strategy()[0])
    net.reinitialise(0)
    net.replace_head(5, 0)
    x = np.random.default_rng(0).standard_normal((batch, box, box, box)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[np.arange(batch) % 5]
    fwd = rate(lambda: net.features(x), batch, seconds)
    train = rate(lambda: net.train_batch(x, y), batch, seconds)
    gflop = yopo.forward_gflop(box, list(method.network.widths), method.network.feature_dim)
    return {"preset": preset, "precision": precision, "box": box, "batch": batch, "gflop_forward": gflop,
            "params": int(net.features_model.count_params()), "forward_per_s": fwd, "train_per_s": train,
            "forward_gflops": fwd * gflop, "load_average": load_average()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--box", type=int, default=24)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--presets", default="paper,fast")
    p.add_argument("--precisions", default="float32,bfloat16")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out")
    args = p.parse_args()
    from disca_engine.clustering.network import runtime
    tf = runtime.configure_runtime(args.threads, None, 0)
    peaks = {prec: matmul_gflops(tf, getattr(tf, prec)) for prec in args.precisions.split(",")}
    rows = [bench(pr, prec, args.box, args.batch, args.seconds)
            for pr in args.presets.split(",") for prec in args.precisions.split(",")]
    for r in rows:
        r["fraction_of_peak"] = r["forward_gflops"] / peaks[r["precision"]]
    print(f"# YOPO throughput, box {args.box}, batch {args.batch}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, tensorflow {tf.__version__}")
    print("matmul peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    print("| preset | precision | GFLOP/fwd | params | forward /s | train /s | fwd GFLOP/s | of matmul peak | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['precision']} | {r['gflop_forward']:.2f} | {r['params']:,} | "
              f"{r['forward_per_s']:.1f} | {r['train_per_s']:.1f} | {r['forward_gflops']:.0f} | "
              f"{100 * r['fraction_of_peak']:.0f}% | {r['load_average']:.1f} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"peaks_gflops": peaks, "rows": rows, "argv": sys.argv}, fh, indent=1)


if __name__ == "__main__":
    main()
