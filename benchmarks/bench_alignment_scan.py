"""Cost of the alignment's rotation scan: real-space coarse copies rolled to every shift
against the band-coefficient form that `align.scan.align` uses (same scores, checked),
side by side in one process.

    python benchmarks/bench_alignment_scan.py --n 256 --k 20 --rotations 1500 --out R.json

Random data stand in for subtomograms (the cost does not depend on the content).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _Stack(data):
    """Subtomograms held in memory, as the engine's particle set (no STAR file)."""
    from disca_engine.clustering.dataset import ParticleSet
    return ParticleSet(None, None, np.asarray(data, np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--rotations", type=int, default=1500)
    ap.add_argument("--box", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    from disca_engine import settings as S
    from disca_engine.clustering.align.fourier import fourier_crop, unit_filtered
    from disca_engine.clustering.align.scan import coarse_scores
    from disca_engine.clustering.align.stack import AlignedStack, band_coefficients, real_pair
    rng = np.random.default_rng(0)
    data = rng.standard_normal((args.n, args.box, args.box, args.box)).astype(np.float32)
    defaults = S.Alignment()    # the default method's coarse box and shift search
    stack = AlignedStack(_Stack(data), coarse=defaults.coarse, coarse_shift=defaults.coarse_shift)
    c, measured = stack.c, stack.band_c & stack.wedge_c
    coarse = unit_filtered(fourier_crop(data, c), measured).reshape(-1, c, c, c)
    refs = rng.standard_normal((args.k * args.rotations, c ** 3)).astype(np.float32)

    def real_space():
        best = None
        for t in [(z, y, x) for z in (-1, 0, 1) for y in (-1, 0, 1) for x in (-1, 0, 1)]:
            sc = np.roll(coarse, t, (1, 2, 3)).reshape(len(coarse), -1) @ refs.T
            best = sc if best is None else np.maximum(best, sc)
        return best

    def band_form():
        band = np.concatenate([real_pair(band_coefficients(refs[i:i + 4096], c, stack.band_idx,
                                                           stack.band_scale))
                               for i in range(0, len(refs), 4096)])
        return coarse_scores(stack.coarse_band, band, stack.phases)

    times = {"real_space": [], "band": []}
    for _ in range(args.repeats):
        for name, fn in (("real_space", real_space), ("band", band_form)):
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            if name == "real_space":
                ref_out = out
            else:
                assert np.allclose(out, ref_out, atol=1e-3), "the two forms disagree"
    best = {k: min(v) for k, v in times.items()}
    result = {"n": args.n, "k": args.k, "rotations": args.rotations, "coarse": c,
              "band_coefficients": int(len(stack.band_idx)), "shifts": int(len(stack.phases)),
              "seconds_min": {k: round(v, 3) for k, v in best.items()},
              "speed_ratio": round(best["real_space"] / best["band"], 2),
              "load_average": os.getloadavg()[0],
              "threads": os.environ.get("OMP_NUM_THREADS", "unset")}
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
