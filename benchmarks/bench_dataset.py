"""Loading speed of dataset.load_particles: N single-volume MRCs vs one N@stack.mrcs,
into RAM, into the memory-mapped cache, and reusing the cache.

Usage: python benchmarks/bench_dataset.py [--n 2000] [--box 24]   (uses a temporary folder)
"""
import argparse
import os
import tempfile
import time

import numpy as np

from disca_engine.clustering.dataset import load_particles
from disca_engine.io.mrc import write_volume
from disca_engine.io.star import StarTable, write_star


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--box", type=int, default=24)
    args = ap.parse_args()
    n, s = args.n, args.box
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            write_volume(f"{d}/p{i}.mrc", rng.standard_normal((s, s, s), dtype=np.float32))
        write_volume(f"{d}/stack.mrcs", rng.standard_normal((n, s, s, s), dtype=np.float32))
        write_star(f"{d}/single.star", StarTable({"rlnImageName": [f"p{i}.mrc" for i in range(n)]}))
        write_star(f"{d}/stack.star", StarTable({"rlnImageName": [f"{i + 1}@stack.mrcs" for i in range(n)]}))
        print(f"{n} subtomograms of {s}^3; load average {os.getloadavg()[0]:.1f}\n")
        print("| source | into RAM (subtomograms/s) | writing the cache (subtomograms/s) | reusing the cache (s) |")
        print("|---|---|---|---|")
        for star in ("single", "stack"):
            path = f"{d}/{star}.star"
            t0 = time.perf_counter()
            load_particles(path, progress=False)
            ram = n / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            load_particles(path, cache_dir=f"{d}/cache_{star}", progress=False)
            write = n / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            load_particles(path, cache_dir=f"{d}/cache_{star}", progress=False)
            reuse = time.perf_counter() - t0
            label = "single-volume MRC files" if star == "single" else "one N@stack.mrcs"
            print(f"| {label} | {ram:,.0f} | {write:,.0f} | {reuse:.3f} |", flush=True)


if __name__ == "__main__":
    main()
