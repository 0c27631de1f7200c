"""DISCA accuracy matrix on simulated subtomograms, beside a rotation-invariant baseline told K.

    nice -n 5 python benchmarks/bench_accuracy.py --half report --structures 3,5,8,10 --seeds 0,1,2 \
        --snr 0.1 --n-per-class 40 --out benchmarks/results/accuracy_matrix_report.json

Each cell: a structure set of S templates drawn with the seed from one half of
``TEMPLATE_HALVES`` (``--half tuning`` while choosing defaults, ``--half report`` for the
numbers we publish; ``--classes`` names a set explicitly) -> ``simulate_subtomograms``
(optionally with junk boxes) -> ``run_cluster`` with the chosen preset and NO hint about K ->
K found, homogeneity, completeness, ARI, accuracy (Hungarian), minutes and the per-iteration
trajectory. The baseline (radial profile + log radial power spectrum, PCA 8, k-means told the
true K; ``scripts/simulator_baseline.py``) runs on the same data. Junk boxes count as one
extra true class for the scores; ``structure_homogeneity`` scores the structures alone.
Results are appended to ``--out`` after every cell (JSON), so a long matrix can be resumed
with ``--skip-done``.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))


def scores(truth, labels, junk_class=None):
    from sklearn.metrics import adjusted_rand_score, completeness_score, homogeneity_score
    from disca_engine.clustering.metrics import matched_accuracy
    out = {"homogeneity": homogeneity_score(truth, labels),
           "completeness": completeness_score(truth, labels),
           "ari": adjusted_rand_score(truth, labels), "accuracy": matched_accuracy(truth, labels)}
    if junk_class is not None:
        keep = truth != junk_class
        out["structure_homogeneity"] = homogeneity_score(truth[keep], labels[keep])
        # clusters holding junk: fraction of junk boxes in clusters that are >= 80% junk
        junk = ~keep
        pure = [c for c in np.unique(labels) if np.mean(junk[labels == c]) >= 0.8]
        out["junk_isolated"] = float(np.mean(np.isin(labels[junk], pure))) if junk.any() else None
    return {k: (round(float(v), 4) if v is not None else None) for k, v in out.items()}


def baseline(star, truth, k):
    """Radial profile + radial power spectrum, PCA 8, k-means with the true K."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from simulator_baseline import invariant_features
    from disca_engine.clustering.dataset import load_particles
    parts = load_particles(star, progress=False)
    data = np.concatenate(list(parts.iter_batches(None, 256)))
    feats = PCA(8, random_state=0).fit_transform(invariant_features(data))
    return KMeans(k, n_init=10, random_state=0).fit_predict(feats)


def structure_names(args, n_structures, seed):
    from disca_engine.simulate.templates import structure_set
    if args.classes:
        return args.classes.split(",")
    return structure_set(args.half, n_structures, seed)


def simulate(folder, names, args, snr, tilt, seed):
    """The cell's boxes: the idealised path (one particle, Fourier wedge, white noise) or
    the realistic one (tilt series through crowded scenes with membranes and gold, per-tilt
    CTF and dose, WBP; docs/simulator.md), each with its own defaults."""
    from disca_engine.simulate import simulate_subtomograms, simulate_tiltseries_subtomograms
    make = simulate_tiltseries_subtomograms if args.path == "realistic" else simulate_subtomograms
    kw = {}
    if args.junk:
        kw["junk_fraction"] = args.junk
    with contextlib.redirect_stdout(io.StringIO()):
        return make(folder, classes=",".join(names), n_per_class=args.n_per_class, snr=snr,
                    tilt=tilt, size=args.size, seed=seed, **kw)


def cell_tag(half, n_structures, seed, snr, tilt, n_per_class, junk, path="ideal", size=24):
    """The name of a cell's folders under --work (``sim_<tag>``, ``<preset>_<label>_<tag>``)."""
    return (f"{half}_s{n_structures}_seed{seed}_snr{snr:g}_tilt{tilt:g}_n{n_per_class}"
            + (f"_junk{junk:g}" if junk else "") + ("" if path == "ideal" else f"_{path}")
            + ("" if size == 24 else f"_box{size}"))


def cell(args, n_structures, seed, snr, tilt):
    from disca_engine.clustering.run import run_cluster
    from disca_engine.io.star import read_star
    names = structure_names(args, n_structures, seed)
    tag = cell_tag(args.half, len(names), seed, snr, tilt, args.n_per_class, args.junk,
                   args.path, args.size)
    sim = os.path.join(args.work, "sim_" + tag)
    star = os.path.join(sim, "particles.star")
    if not os.path.isfile(star):
        star = simulate(sim, names, args, snr, tilt, seed)
    truth = np.asarray(read_star(star).column("discaTrueClass", int, star))
    junk_class = len(names) if args.junk else None
    t0 = time.time()
    base = baseline(star, truth, len(np.unique(truth)))
    t_base = time.time() - t0
    out = os.path.join(args.work, f"{args.preset}_{args.label}_{tag}")
    t0 = time.time()
    with open(out + ".log", "w") as log, contextlib.redirect_stdout(log):
        report = run_cluster(star, out, preset=args.preset, overwrite=True, seed=seed,
                             **json.loads(args.settings))
    minutes = (time.time() - t0) / 60
    with open(out + ".log") as fh:
        log_tail = fh.read().splitlines()[-3:]
    labels = np.asarray(read_star(os.path.join(out, "clusters.star")).column("rlnClassNumber", int))
    traj = [(r["k"], round(r["ground_truth"]["homogeneity"], 3), round(r["ddbi"], 3))
            for r in report["iterations"]]
    return {"half": args.half, "path": args.path, "size": args.size, "structures": names, "n_structures": len(names), "seed": seed, "snr": snr,
            "tilt": tilt, "n": report["n_particles"], "n_per_class": args.n_per_class, "junk": args.junk, "preset": args.preset,
            "settings": json.loads(args.settings), "k_found": report["k"],
            "disca": scores(truth, labels, junk_class), "baseline_told_k": scores(truth, base, junk_class),
            "minutes": round(minutes, 2), "baseline_seconds": round(t_base, 1),
            "chosen_iteration": report["chosen_iteration"], "iterations": len(report["iterations"]),
            "trajectory_k_homogeneity_ddbi": traj, "load_average": os.getloadavg(),
            "rest": report.get("rest"), "log_tail": log_tail}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--half", default="tuning", choices=["tuning", "report"])
    p.add_argument("--structures", default="3,5,8,10", help="structure-set sizes")
    p.add_argument("--classes", help="explicit comma-separated class names (overrides --structures)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--snr", default="0.1")
    p.add_argument("--tilt", default="60")
    p.add_argument("--n-per-class", type=int, default=40)
    p.add_argument("--junk", type=float, default=0.0, help="fraction of junk boxes (empty, gold, membrane)")
    p.add_argument("--path", default="ideal", choices=["ideal", "realistic"],
                   help="the simulator's idealised or realistic (tilt series, crowding) path")
    p.add_argument("--size", type=int, default=24, help="box size in voxels (14 A)")
    p.add_argument("--preset", default="auto")
    p.add_argument("--settings", default="{}", help="JSON of extra run_cluster settings (settings."
                   "resolve's names: '{\"threads\": 1, \"alignment\": {\"rotations\": 300}}')")
    p.add_argument("--label", default="default", help="name of this variant in output folders")
    p.add_argument("--work", default="/tmp/disca_accuracy")
    p.add_argument("--out")
    p.add_argument("--skip-done", action="store_true")
    p.add_argument("--table", nargs="+", metavar="JSON", help="print the markdown table of result files")
    p.add_argument("--previous", nargs="+", metavar="JSON",
                   help="with --table: add the homogeneity of the same cells in these earlier results")
    args = p.parse_args()
    if args.table:
        print(table(args.table, args.previous))
        return
    rows = []
    if args.out and os.path.isfile(args.out):
        with open(args.out) as fh:
            rows = json.load(fh)["rows"]
    sizes = [0] if args.classes else [int(s) for s in args.structures.split(",")]
    for tilt in map(float, args.tilt.split(",")):
        for snr in map(float, args.snr.split(",")):
            for size in sizes:
                for seed in map(int, args.seeds.split(",")):
                    key = (args.half, size or len(args.classes.split(",")), seed, snr, tilt,
                           args.n_per_class, args.junk, args.preset,
                           json.dumps(json.loads(args.settings)), args.path, args.size)
                    if args.skip_done and any(_key(r) == key for r in rows):
                        continue
                    r = cell(args, size, seed, snr, tilt)
                    rows.append(r)
                    d, b = r["disca"], r["baseline_told_k"]
                    print(f"RESULT {r['half']} S={r['n_structures']} seed={seed} SNR={snr:g} tilt={tilt:g} "
                          f"N={r['n']}: K={r['k_found']} hom={d['homogeneity']:.3f} comp={d['completeness']:.3f} "
                          f"acc={d['accuracy']:.3f} | baseline(K told) hom={b['homogeneity']:.3f} "
                          f"| {r['minutes']:.1f} min | {r['trajectory_k_homogeneity_ddbi']}", flush=True)
                    if args.out:
                        with open(args.out, "w") as fh:
                            json.dump({"argv": sys.argv, "rows": rows}, fh, indent=1)


def _load_rows(paths):
    rows = []
    for path in paths or []:
        with open(path) as fh:
            rows += json.load(fh)["rows"]
    return rows


def _cell_id(r):
    return (r["half"], tuple(r["structures"]), r["seed"], r["snr"], r["tilt"], r["n_per_class"],
            r["junk"], r.get("path", "ideal"), r.get("size", 24))


def table(paths, previous=None):
    """Markdown rows of every cell in the given result files, worst DISCA homogeneity first;
    with ``previous``, the same cells' homogeneity (K) in earlier results beside them."""
    rows = sorted(_load_rows(paths), key=lambda r: r["disca"]["homogeneity"])
    before = {_cell_id(r): r for r in _load_rows(previous)}
    head = ("| half | path | box | structures | seed | SNR | tilt | junk | N | K found (true) | homogeneity | "
            "completeness | ARI | baseline told K: homogeneity (completeness, ARI) |")
    head += " earlier default: homogeneity, ARI (K) |" if previous else ""
    head += " minutes (1 core) |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        d, b = r["disca"], r["baseline_told_k"]
        hom = f"{d['homogeneity']:.3f}"
        if r["junk"]:
            hom += (f" (structures {d['structure_homogeneity']:.3f}; junk in junk clusters "
                    f"{100 * (d['junk_isolated'] or 0):.0f}%)")
        line = (f"| {r['half']} | {r.get('path', 'ideal')} | {r.get('size', 24)} | "
                f"{', '.join(r['structures'])} | {r['seed']} | {r['snr']:g} | "
                f"+-{r['tilt']:g} | {r['junk'] or '-'} | {r['n']} | {r['k_found']} ({r['n_structures']}"
                f"{' + junk' if r['junk'] else ''}) | {hom} | {d['completeness']:.3f} | "
                f"{d['ari']:.3f} | {b['homogeneity']:.3f} ({b['completeness']:.3f}, {b['ari']:.3f}) |")
        if previous:
            old = before.get(_cell_id(r))
            line += (f" {old['disca']['homogeneity']:.3f}, {old['disca']['ari']:.3f} ({old['k_found']}) |"
                     if old else " - |")
        out.append(line + f" {r['minutes']:.1f} |")
    return "\n".join(out)


def _key(r):
    return (r["half"], r["n_structures"], r["seed"], r["snr"], r["tilt"], r["n_per_class"],
            r["junk"], r["preset"], json.dumps(r["settings"]), r.get("path", "ideal"),
            r.get("size", 24))


if __name__ == "__main__":
    main()
