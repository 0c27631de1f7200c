"""Throughput of the rotation augmentation (disca_engine.clustering.augment) against
scipy.ndimage.affine_transform applied per volume (the obvious alternative).

Usage: python benchmarks/bench_augment.py [--box 24] [--batch 64] [--repeats 7]
Prints a markdown table; rates are best-of-repeats (the machine is shared, so the best
run is the least disturbed one) with the median in brackets, per wall-clock second and
per CPU second of this process (the latter is what one core delivers, independent of
time-slicing with other processes; for the 2-thread row it sums both threads).
Single-threaded except the 2-thread row.
"""
import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from disca_engine.clustering.augment import random_rotation_matrices, rotate_volumes  # noqa: E402


def scipy_rotate(vols, mats, rng, order):
    s = vols.shape[1]
    c = np.full(3, (s - 1) / 2)
    swap = np.eye(3)[::-1]
    out = np.empty_like(vols)
    for b in range(len(vols)):
        m = swap @ mats[b].T @ swap
        out[b] = ndimage.affine_transform(vols[b], m, offset=c - m @ c, order=order)
    return out


def timed(fn, repeats):
    fn()  # warm-up (caches, lazy imports)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), float(np.median(wall)), min(cpu), float(np.median(cpu))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--box", type=int, default=24)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    s, b = args.box, args.batch
    vols = rng.standard_normal((b, s, s, s), dtype=np.float32)
    mats = random_rotation_matrices(b, rng)
    rows = [
        ("disca rotate_volumes, trilinear + noise fill", lambda: rotate_volumes(vols, mats, rng, order=1)),
        ("disca rotate_volumes, nearest + noise fill", lambda: rotate_volumes(vols, mats, rng, order=0)),
        ("disca rotate_volumes, trilinear + noise fill, 2 threads",
         lambda: rotate_volumes(vols, mats, rng, order=1, workers=2)),
        ("scipy affine_transform order 1 per volume (no noise fill)", lambda: scipy_rotate(vols, mats, rng, 1)),
    ]
    load = os.getloadavg()[0]
    print(f"box {s}^3, batch {b}, {args.repeats} repeats, BLAS/OpenMP 1 thread; cpu count {os.cpu_count()}, "
          f"load average at start {load:.1f}")
    print()
    print("| method | rotations per wall-clock s, best (median) | rotations per CPU s, best (median) |")
    print("|---|---|---|")
    for name, fn in rows:
        best, med, cbest, cmed = timed(fn, args.repeats)
        print(f"| {name} | {b / best:,.0f} ({b / med:,.0f}) | {b / cbest:,.0f} ({b / cmed:,.0f}) |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
