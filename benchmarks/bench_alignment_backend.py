"""The alignment scan's kernels on numpy and on jax.numpy (``align.backend``), on the same
data, side by side: the coarse band scores (matrix products over the shift phases), the
translation scores (FFTs and a gather), the trilinear rotation (gathers), and one whole
``scan.align`` call, at each box size. Each timing is the best of ``--repeats`` after one
warm-up call (JAX compiles there); jax results are copied to the host inside the timing.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/bench_alignment_backend.py --box 24,32 \
        --threads 1 --out benchmarks/results/alignment_backend_cpu.json

On a GPU machine, run it as it is (JAX picks the GPU): the JSON names the device. Random
data stand in for subtomograms (the cost does not depend on the content); the two
backends' scores are compared (max relative difference) so a fast wrong kernel shows.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_time(fn, repeats):
    out = fn()  # warm-up: JAX traces and compiles here
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / (np.abs(a).max() + 1e-30))


def kernels(box, args, backends):
    """{kernel: {backend: seconds}} and the jax-vs-numpy differences at one box size."""
    from disca_engine.clustering.align import rotations, scan
    from disca_engine.clustering.align.fourier import energy, half, spectra
    from disca_engine.clustering.align.stack import AlignedStack
    from disca_engine.clustering.augment import random_rotation_matrices
    from disca_engine.clustering.dataset import ParticleSet
    from disca_engine import settings as S
    rng = np.random.default_rng(0)
    data = rng.standard_normal((args.n, box, box, box)).astype(np.float32)
    refs = rng.standard_normal((args.k, box, box, box)).astype(np.float32)
    grid = rotations.rotation_grid(args.rotations)
    mats = random_rotation_matrices(args.n, rng).astype(np.float32)
    d = S.Alignment()
    seconds, outs = {}, {}
    for be in backends:
        stack = AlignedStack(ParticleSet(None, None, data), d.coarse, d.coarse_shift, backend=be)
        rc = scan.rotated_band(stack, refs, grid)
        m = half(stack.band_f & stack.wedge)
        moved_host = be.host(be.rotate(np.repeat(refs[:1] * stack.mask, args.n, 0), mats))
        dev = {"coef": be.device(stack.coarse_band), "rc": be.device(rc),
               "phases": be.device(stack.phases), "m": be.device(m),
               "vols": be.device(data), "moved": be.device(moved_host),
               "movers": be.device(np.repeat(refs[:1], args.n, 0))}
        fp = spectra(dev["vols"], dev["m"], be.xp)
        ep = energy(fp, box)
        jobs = {
            "coarse_scores": lambda: be.host(scan.coarse_scores(dev["coef"], dev["rc"],
                                                                dev["phases"], be)),
            "translation_scores": lambda: scan.translation_scores(fp, ep, dev["moved"], dev["m"],
                                                                  3, be)[0],
            "rotate": lambda: be.host(be.rotate(dev["movers"], mats)),
            "align": lambda: scan.align(stack, refs, grid)[3],
        }
        for name, fn in jobs.items():
            t, out = best_time(fn, args.repeats)
            seconds.setdefault(name, {})[be.name] = round(t, 4)
            outs.setdefault(name, {})[be.name] = out
    diff = {name: rel_diff(o["numpy"], o["jax"]) for name, o in outs.items() if len(o) == 2}
    return seconds, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--box", default="24,32", help="box sizes, comma-separated")
    ap.add_argument("--n", type=int, default=64, help="subtomograms (one scan chunk)")
    ap.add_argument("--k", type=int, default=4, help="references")
    ap.add_argument("--rotations", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="1: XLA's CPU client on one thread")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.threads == 1:  # before JAX starts (the engine's runtime sets the same flags)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    from disca_engine.clustering.align.backend import NUMPY, JaxBackend
    backends = (NUMPY, JaxBackend())
    result = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                          "jax_device": str(jax.devices()[0]), "jax": jax.__version__,
                          "numpy": np.__version__, "python": platform.python_version(),
                          "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
                          "XLA_FLAGS": os.environ.get("XLA_FLAGS", "").strip()},
              "load_average_before": [round(v, 2) for v in os.getloadavg()],
              "settings": {"n": args.n, "k": args.k, "rotations": args.rotations,
                           "repeats": args.repeats}, "boxes": {}}
    for box in (int(b) for b in args.box.split(",")):
        seconds, diff = kernels(box, args, backends)
        ratio = {name: round(t["numpy"] / t["jax"], 2) for name, t in seconds.items()}
        result["boxes"][str(box)] = {"seconds": seconds, "numpy_over_jax": ratio,
                                     "max_relative_difference": diff}
        print(f"box {box}^3 (n={args.n}, k={args.k}, {args.rotations} rotations)")
        print(f"  {'kernel':20s} {'numpy s':>9s} {'jax s':>9s} {'numpy/jax':>9s} {'rel diff':>9s}")
        for name, t in seconds.items():
            print(f"  {name:20s} {t['numpy']:9.4f} {t['jax']:9.4f} {ratio[name]:9.2f} "
                  f"{diff[name]:9.1e}")
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result["machine"]), "load", result["load_average_before"],
          "->", result["load_average_after"])
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
