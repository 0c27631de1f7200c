"""Recall and precision of DoG picking on simulated tomograms (disca_engine.simulate).

For every SNR, simulates tomograms (CTF, missing wedge, gold and a vesicle as distractors;
particles dark), picks them with the engine's defaults (or the given settings) and reports,
for the best k picks (k = 0.5, 1, 1.5, 2, 3, 5 x the number of true particles, and all
picks above the automatic threshold):

- recall: fraction of true particles with a pick within half of THAT particle's diameter
- precision: fraction of the k picks within half a diameter of some true particle

Example (the table in benchmarks/results/picking.md):
    nice -n 10 python benchmarks/recall_picking.py --snr 0.1 0.03 0.01 --n-tomograms 2
"""
import argparse
import json
import time

import numpy as np
from scipy.spatial import cKDTree

FACTORS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


def match(picks_xyz, true_xyz, radii):
    """(found[true], good[pick]) with a pick within radius of a true particle."""
    if len(picks_xyz) == 0:
        return np.zeros(len(true_xyz), bool), np.zeros(0, bool)
    d, _ = cKDTree(picks_xyz).query(true_xyz)
    found = d <= radii
    d2, j = cKDTree(true_xyz).query(picks_xyz)
    good = d2 <= radii[j]
    return found, good


def evaluate(result, true_xyz, radii):
    n_true = len(true_xyz)
    rows = {}
    for f in FACTORS + ("all",):
        k = len(result) if f == "all" else int(round(f * n_true))
        found, good = match(result.xyz[:k], true_xyz, radii)
        rows[str(f)] = dict(k=min(k, len(result)), found=int(found.sum()), good=int(good.sum()),
                            n_true=n_true)
    return rows


def run(args):
    from disca_engine.picking import pick_tomogram
    if args.sigma_per_radius is not None:  # explore the sigma1 rule (default radius / sqrt(3))
        import disca_engine.picking.pipeline as pipeline
        pipeline.SIGMA_PER_RADIUS = args.sigma_per_radius
    from disca_engine.simulate import generate_tomogram, resolve_classes, template
    names = resolve_classes(args.classes)
    diam_A = {n: template(n, args.voxel_A).diameter_a for n in names}
    out = {"settings": vars(args), "class_diameters_A": diam_A, "snr": {}}
    for snr in args.snr:
        totals = {}
        t_pick = 0.0
        for t in range(args.n_tomograms):
            sim = generate_tomogram(shape=tuple(args.shape), voxel_A=args.voxel_A, classes=names,
                                    n_particles=args.n_particles, snr=snr, tilt=args.tilt,
                                    seed=[args.seed, t], distractors=not args.no_distractors)
            true_xyz = sim["centres"][:, ::-1]
            radii = np.array([diam_A[names[lab]] / 2 / args.voxel_A for lab in sim["labels"]])
            t0 = time.perf_counter()
            res = pick_tomogram(sim["volume"], args.voxel_A, args.diameter_A,
                                threshold_sigma=args.threshold_sigma, bin=args.bin,
                                min_distance_A=args.min_distance_A)
            t_pick += time.perf_counter() - t0
            for key, row in evaluate(res, true_xyz, radii).items():
                acc = totals.setdefault(key, dict(k=0, found=0, good=0, n_true=0))
                for c in acc:
                    acc[c] += row[c]
        table = {key: dict(picks=r["k"], recall=r["found"] / max(1, r["n_true"]),
                           precision=r["good"] / max(1, r["k"])) for key, r in totals.items()}
        out["snr"][str(snr)] = dict(table=table, n_true=totals["all"]["n_true"],
                                    pick_seconds=t_pick)
        print(f"SNR {snr}: " + "  ".join(
            f"{k}x: n={v['picks']} R={v['recall']:.2f} P={v['precision']:.2f}" for k, v in table.items()),
            flush=True)
    return out


def markdown(res):
    s = res["settings"]
    extra = "" if s["bin"] == 1 else f" --bin {s['bin']}"
    if s["threshold_sigma"] is not None:
        extra += f" --threshold-sigma {s['threshold_sigma']}"
    if s.get("sigma_per_radius") is not None:
        extra += f" --sigma-per-radius {s['sigma_per_radius']}"
    if s["min_distance_A"] is not None:
        extra += f" --min-distance-A {s['min_distance_A']}"
    diams = ", ".join(f"{k} {v:.0f} A" for k, v in res["class_diameters_A"].items())
    scene = "no distractors" if s["no_distractors"] else "gold + vesicle distractors"
    lines = [f"Simulated tomograms {tuple(s['shape'])} (z, y, x) at {s['voxel_A']} A/voxel, "
             f"{s['n_particles']} particles each ({diams}), tilt +-{s['tilt']}, {scene}, "
             f"{s['n_tomograms']} tomograms per SNR; picked with --particle-diameter-A "
             f"{s['diameter_A']}{extra}.",
             "", "| SNR | best k picks (x true) | picks | recall | precision |", "|---|---|---|---|---|"]
    for snr, r in res["snr"].items():
        for key, v in r["table"].items():
            label = "all above threshold" if key == "all" else f"{key} x"
            lines.append(f"| {snr} | {label} | {v['picks']} | {v['recall']:.3f} | {v['precision']:.3f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snr", type=float, nargs="+", default=[0.1, 0.03, 0.01])
    p.add_argument("--n-tomograms", type=int, default=2)
    p.add_argument("--shape", type=int, nargs=3, default=[96, 256, 256], metavar=("Z", "Y", "X"))
    p.add_argument("--voxel-A", type=float, default=14.0)
    p.add_argument("--n-particles", type=int, default=60)
    p.add_argument("--classes", default="default")
    p.add_argument("--tilt", type=float, default=60.0)
    p.add_argument("--no-distractors", action="store_true")
    p.add_argument("--diameter-A", type=float, default=180.0)
    p.add_argument("--min-distance-A", type=float, default=None)
    p.add_argument("--threshold-sigma", type=float, default=None)
    p.add_argument("--bin", type=int, default=1)
    p.add_argument("--sigma-per-radius", type=float, default=None,
                   help="sigma1 = this x particle radius (default: the engine's 1/sqrt(3))")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--markdown", help="write a markdown table here")
    args = p.parse_args()
    res = run(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(markdown(res) + "\n")
    print(markdown(res))


if __name__ == "__main__":
    main()
