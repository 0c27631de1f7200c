"""Cost of the report's expensive parts (t-SNE embeddings, decoder training) on a cluster
folder built from simulated subtomograms (labels = ground truth, features = class means +
noise; no network run, so only the report is timed).

    nice -n 10 <engine env>/bin/python benchmarks/bench_report.py --n 500 2000 --iterations 10 \
        --out benchmarks/results/report_budget.json

Prints and writes wall and CPU seconds per stage: the embedding of every iteration, computed
and then again from its cache, and the decoder with its default (N-sized) budget: training
time, steps, which cap stopped it and its loss curve.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np


def build(folder, n, iterations=3, seed=0):
    from disca_engine.io import mrc, star
    from disca_engine.simulate import simulate_subtomograms
    sim = os.path.join(folder, "sim")
    particles = simulate_subtomograms(sim, classes=5, n_per_class=n // 5, snr=0.1, seed=seed,
                                      stack=True)
    out = os.path.join(folder, "run")
    os.makedirs(out, exist_ok=True)
    table = star.read_star(particles)
    truth = table.column("discaTrueClass", int)
    table.columns["rlnImageName"] = [f"{i.split('@')[0]}@{os.path.join(sim, i.split('@')[1])}"
                                     for i in table["rlnImageName"]]
    table["rlnClassNumber"] = truth
    table["rlnMaxValueProbDistribution"] = np.ones(len(truth))
    star.write_star(os.path.join(out, "clusters.star"), table)
    rng = np.random.default_rng(seed)
    feats = rng.normal(0, 1, (5, 256))[truth - 1] + rng.normal(0, 1.5, (len(truth), 256))
    np.save(os.path.join(out, "features.npy"), feats.astype(np.float32))
    for it in range(1, iterations + 1):
        d = os.path.join(out, "iterations", f"iter_{it:03d}")
        os.makedirs(d, exist_ok=True)
        f = feats - feats.mean(0)
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        np.save(os.path.join(d, "features_pca.npy"), (u[:, :16] * s[:16]).astype(np.float32))
        np.save(os.path.join(d, "labels.npy"), (truth - 1).astype(np.int32))
    with mrc_stack(os.path.join(sim, "particles.mrcs")) as data:
        for c in range(1, 6):
            mrc.write_volume(os.path.join(out, "averages", f"class_{c:03d}.mrc"),
                             data[truth == c].mean(axis=0), 14.0)
    info = {"preset": "bench", "n_particles": len(truth), "box_size": 24, "voxel_size": 14.0,
            "iterations": [{"iteration": i, "k": 5, "ddbi": 1.0 / i, "bic": {"5": 0.0}}
                           for i in range(1, iterations + 1)],
            "chosen_iteration": iterations, "k": 5, "ddbi": 1.0 / iterations}
    with open(os.path.join(out, "report.json"), "w") as fh:
        json.dump(info, fh)
    return out


class mrc_stack:
    def __init__(self, path):
        import mrcfile
        self.m = mrcfile.mmap(path, mode="r", permissive=True)

    def __enter__(self):
        return np.asarray(self.m.data, dtype=np.float32)

    def __exit__(self, *exc):
        self.m.close()


def bench(n, iterations):
    from disca_engine.report import embedding, plots
    from disca_engine.report.decoder import train_and_decode
    from disca_engine.report.run import ClusterRun
    folder = tempfile.mkdtemp(prefix="bench_report_")
    try:
        run = ClusterRun(build(folder, n, iterations))
        colors = plots.cluster_colors(run.k)
        res = {"n": n, "iterations": iterations}
        for stage in ("embedding_every_iteration", "embedding_again_from_cache"):
            t, c = time.time(), time.process_time()
            emb = embedding.plot_embeddings(run, os.path.join(folder, "emb.png"), colors,
                                            max_points=2000)
            res[stage] = {"wall_s": round(time.time() - t, 1), "cpu_s": round(time.process_time() - c, 1),
                          "computed": emb["computed"], "frames": len(emb["frames"])}
        t, c = time.time(), time.process_time()
        _, info = train_and_decode(run, os.path.join(folder, "rep"))
        res["decoder"] = {"wall_s_total": round(time.time() - t, 1),
                          "cpu_s_total": round(time.process_time() - c, 1),
                          **{k: info[k] for k in ("seconds_train", "seconds_setup", "epochs_run",
                                                  "steps", "max_steps", "max_seconds", "stopped_by",
                                                  "loss_first", "loss_last", "n_train",
                                                  "variance_of_targets", "loss_curve")}}
        print(json.dumps(res), flush=True)
        return res
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--iterations", type=int, default=3, help="iterations with features to embed")
    ap.add_argument("--out")
    args = ap.parse_args()
    results = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
               "load_average_at_start": os.getloadavg()[0], "runs": [bench(n, args.iterations) for n in args.n]}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
