"""Cost of DISCA at large N, split by stage, with peak resident memory and disk.

Two measurements (each in its own process, so peak RSS belongs to that N alone):

``iteration``: one full iteration of the `disca-engine cluster` defaults (the CLI's default
preset) on a particles STAR: loading into the memory-mapped cache, features, PCA,
mixtures/K search, DDBI, head, training, checkpoint and the output files, from the loop's
own per-stage timers (checkpoint and outputs timed by wrapping them here).

``stages``: every stage of one default iteration at a large N, for when the whole iteration
does not fit the machine's time: on all N, the rotation-invariant descriptors, the seed
k-means, the alignment classification's stack, its initial references and **one** of its
rounds (a run makes 16-32 rounds and merge tests), the network features, PCA, the mixture
of the labels, DDBI, the head and the checkpoint; training (one epoch of 2N in the default)
on the first ``--train-n`` subtomograms, whose rate gives the epoch's time at N.

``stream``: features + K search + prediction with the stack memory-mapped from disk (never
whole in RAM): features of all N streamed through the network (untrained weights: the
cost is that of any iteration), PCA, the K search of the preset, then the prediction
step after the network (PCA transform + mixture posteriors + labels) for all N. With
``--predict-n M`` the end-to-end `predict` pass (features + posteriors + class sums, the
code of `disca-engine predict`) is also run over the first M subtomograms. ``--repeat R``
measures R copies of the STAR's rows (written beside it as ``<name>_xR.star``): 200,000
subtomograms from a 20,000 simulation, whose memory-mapped cache is then 200,000 rows.

Peak RSS is ru_maxrss after each stage (monotonic); the load average is read before and
after. Usage:
    python benchmarks/bench_scaling.py iteration --star S.star --work DIR --out R.json
    python benchmarks/bench_scaling.py stream --star S.star --work DIR --out R.json [--predict-n M]
    python benchmarks/bench_scaling.py stages --star S.star --work DIR --out R.json [--train-n M]
(``--preset NAME`` measures another preset.)
"""
import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def anon_mb():
    """Current anonymous resident memory (arrays allocated by the process), MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class RssSampler(threading.Thread):
    """Peak anonymous and file-backed resident memory (/proc/self/status, every 0.2 s):
    pages of the memory-mapped stack count in RSS as file-backed (reclaimable page cache),
    the arrays the engine allocates as anonymous."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = {"RssAnon": 0, "RssFile": 0}

    def run(self):
        while True:
            try:
                with open("/proc/self/status") as fh:
                    for line in fh:
                        key = line.split(":")[0]
                        if key in self.peak:
                            self.peak[key] = max(self.peak[key], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.2)

    def mb(self):
        return {k + "_peak_mb": round(v / 1024.0, 1) for k, v in self.peak.items()}


def du_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / 2 ** 20


def default_preset():
    from disca_engine.commands import cluster
    parser = argparse.ArgumentParser()
    cluster.add_parser(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["cluster"]
    return sub.get_default("preset")


def timed(fn, store, key):
    def wrapper(*a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            store[key] = store.get(key, 0.0) + time.perf_counter() - t0
    return wrapper


def run_iteration(args):
    from disca_engine.clustering import loop, outputs
    preset = args.preset or default_preset()
    extra = {}
    loop.Checkpoint.save = timed(loop.Checkpoint.save, extra, "checkpoint")
    outputs.write_all = timed(outputs.write_all, extra, "outputs")  # run_cluster imports it late
    out, cache = os.path.join(args.work, "run"), os.path.join(args.work, "cache")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    t0, c0 = time.perf_counter(), time.process_time()
    report = loop.run_cluster(args.star, out, preset=preset, max_iterations=1, cache_dir=cache,
                              threads=args.threads)
    total = time.perf_counter() - t0
    rec = report["iterations"][0]
    stages = dict(rec["seconds"], **{k: round(v, 3) for k, v in extra.items()})
    accounted = sum(stages.values())
    return {"mode": "iteration", "preset": preset, "n": report["n_particles"], "box": report["box_size"],
            "k": rec["k"], "pca_components": rec["pca_components"], "precision": report["precision"],
            "seconds": stages, "seconds_total": round(total, 2),
            "cpu_seconds_total": round(time.process_time(), 2),
            "seconds_load_and_setup": round(total - accounted, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
            "disk_mb": {"cache": round(du_mb(cache), 1), "run_folder": round(du_mb(out), 1),
                        "checkpoint": round(du_mb(os.path.join(out, "checkpoint")), 1)}}


def run_stream(args):
    import numpy as np
    from disca_engine.clustering import presets, training
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.clustering.loop import compute_features
    from disca_engine.clustering.predict import classify_stream
    from disca_engine.clustering.stats import fit_pca, select_k
    preset = args.preset or default_preset()
    cfg = presets.resolve(preset, threads=args.threads)
    seconds, rss, anon, cpu = {}, {"start": peak_rss_mb()}, {"start": anon_mb()}, {}
    cache = os.path.join(args.work, "cache")
    t0, c0 = time.perf_counter(), time.process_time()
    particles = load_particles(args.star, cache_dir=cache, min_box=None, min_particles=2)
    seconds["load_to_cache"], rss["load"] = time.perf_counter() - t0, peak_rss_mb()
    anon["load"] = anon_mb()
    cpu["load"] = time.process_time() - c0
    training.configure_runtime(args.threads, None, 0)
    precision, _ = training.choose_precision("auto", 0.0)
    training.set_precision(precision)
    net = training.Network(cfg, particles.box, precision, training.make_strategy()[0])
    net.reinitialise(0)
    n = particles.n
    t0, c0 = time.perf_counter(), time.process_time()  # graph tracing is a one-off cost per run: timed apart
    net.features(next(particles.iter_batches(None, cfg["batch_size"])))
    net.features(next(particles.iter_batches(None, 7)))
    seconds["network_build_and_trace"], rss["network"] = time.perf_counter() - t0, peak_rss_mb()
    anon["network"] = anon_mb()
    cpu["network"] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    features = compute_features(net, particles, cfg["batch_size"])
    seconds["features"], rss["features"] = time.perf_counter() - t0, peak_rss_mb()
    anon["features"] = anon_mb()
    cpu["features"] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    pca = fit_pca(features, presets.pca_components_for(cfg, n), seed=0)
    Z = pca.transform(features).astype(np.float32)
    seconds["pca"], rss["pca"] = time.perf_counter() - t0, peak_rss_mb()
    anon["pca"] = anon_mb()
    cpu["pca"] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    mixture, bics = select_k(Z, cfg["k_range"], seed=0, n_init=cfg["gmm_n_init"], reg_covar=cfg["reg_covar"],
                             max_fit_samples=cfg["max_fit_samples"] or 0, progress=False)
    seconds["k_search"], rss["k_search"] = time.perf_counter() - t0, peak_rss_mb()
    anon["k_search"] = anon_mb()
    cpu["k_search"] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    labels = np.empty(n, np.int64)
    for a in range(0, n, 8192):  # the predict step after the network, batched like predict
        proba = mixture.predict_proba(pca.transform(features[a:a + 8192]))
        labels[a:a + 8192] = np.argmax(proba, axis=1)
    seconds["posteriors_all"], rss["posteriors_all"] = time.perf_counter() - t0, peak_rss_mb()
    anon["posteriors_all"] = anon_mb()
    cpu["posteriors_all"] = time.process_time() - c0
    result = {"mode": "stream", "preset": preset, "n": n, "box": particles.box, "precision": precision,
              "batch_size": cfg["batch_size"], "feature_dim": cfg["feature_dim"], "k_found": int(mixture.k),
              "k_candidates": cfg["k_range"], "max_fit_samples": cfg["max_fit_samples"],
              "seconds": {k: round(v, 2) for k, v in seconds.items()},
              "per_second": {"features": round(n / seconds["features"], 1),
                             "posteriors_all": round(n / seconds["posteriors_all"], 1)},
              "peak_rss_mb_after": {k: round(v, 1) for k, v in rss.items()},
              "anon_rss_mb_after": {k: round(v, 1) for k, v in anon.items()},
              "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
              "feature_bytes_per_subtomogram": int(features.nbytes // n + Z.nbytes // n + labels.nbytes // n),
              "cache_mb": round(du_mb(cache), 1)}
    if args.predict_n:
        from disca_engine.clustering.dataset import ParticleSet
        m = min(args.predict_n, n)
        subset = ParticleSet(particles.table, particles.star_path, particles.volumes[:m], particles.voxel_size)
        fn = training.inference_function(net.strategy, net.features_model)
        t0, c0 = time.perf_counter(), time.process_time()
        classify_stream(fn, pca, mixture, subset, 64, time.time())  # its progress uses time.time
        dt = time.perf_counter() - t0
        result["predict_end_to_end"] = {"n": m, "seconds": round(dt, 2), "per_second": round(m / dt, 1),
                                        "cpu_seconds": round(time.process_time() - c0, 2),
                                        "peak_rss_mb_after": round(peak_rss_mb(), 1)}
    shutil.rmtree(cache, ignore_errors=True)
    return result


class Stages:
    """Wall and CPU seconds, anonymous RSS after, of named stages run one after another."""

    def __init__(self):
        self.seconds, self.cpu, self.anon = {}, {}, {}

    def run(self, name, fn, *a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a, **k)
        self.seconds[name] = round(time.perf_counter() - t0, 2)
        self.cpu[name] = round(time.process_time() - c0, 2)
        self.anon[name] = round(anon_mb(), 1)
        print(f"[stages] {name}: {self.seconds[name]:.1f} s", flush=True)
        return out


def run_stages(args):
    import numpy as np
    from disca_engine.clustering import loop, presets, training
    from disca_engine.clustering.alignment import classify
    from disca_engine.clustering.dataset import ParticleSet, load_particles
    from disca_engine.clustering.ddbi import ddbi
    from disca_engine.clustering.labels import label_smoothing
    from disca_engine.clustering.seeding import invariant_space, seed_k, seed_labels
    from disca_engine.clustering.stats import fit_pca
    preset = args.preset or default_preset()
    cfg = presets.resolve(preset, threads=args.threads)
    st, cache, out = Stages(), os.path.join(args.work, "cache"), os.path.join(args.work, "run")
    shutil.rmtree(out, ignore_errors=True)
    particles = st.run("load_to_cache", load_particles, args.star, cache_dir=cache, min_box=None,
                       min_particles=2)
    n = particles.n
    z_inv = st.run("invariant_descriptors", invariant_space, particles, cfg, 0)
    seeds = st.run("seed_kmeans", seed_labels, z_inv, seed_k(cfg, n), 0,
                   int(cfg["min_subtomograms_per_cluster"]))
    lines = []

    def log(message):  # the rounds' own timers, kept for the JSON
        print(message, flush=True)
        lines.append(message)

    one_round = dict(cfg, align_rounds=1, align_merge=0)  # stack + initial references + 1 round
    labels, history = st.run("alignment_stack_references_and_one_round", classify, particles, seeds,
                             z_inv, one_round, log=log)
    k = int(labels.max()) + 1
    training.configure_runtime(args.threads, None, 0)
    precision, _ = training.choose_precision("auto", 0.0)
    training.set_precision(precision)
    net = st.run("network_build", training.Network, cfg, particles.box, precision,
                 training.make_strategy()[0])
    net.reinitialise(0)
    features = st.run("features", loop.compute_features, net, particles, cfg["batch_size"])
    pca = st.run("pca", fit_pca, features, presets.pca_components_for(cfg, n, k), seed=0)
    Z = pca.transform(features).astype(np.float32)
    mixture = st.run("mixture_of_the_labels", loop.mixture_from_labels, Z, labels, k, cfg["reg_covar"])
    space = loop._clustering_space(Z, z_inv, cfg)
    score = st.run("ddbi", ddbi, space, labels)
    alpha = label_smoothing(0, cfg["label_smoothing"], cfg["smoothing_decay"])
    st.run("head", loop.train_head, net, features, labels, k, alpha, cfg, 0, 0)
    m = min(args.train_n, n)
    subset = ParticleSet(particles.table, particles.star_path, particles.volumes[:m], particles.voxel_size)
    st.run("train_subset", loop.train_network, net, subset, labels[:m], k, alpha, cfg, 0, 0)
    proba = mixture.predict_proba(Z)
    best = {"iteration": 1, "ddbi": float(score), "k": k, "labels": labels,
            "posterior": proba[np.arange(n), labels].astype(np.float32), "pca": pca,
            "mixture": mixture, "features": features, "features_pca": Z,
            "weights": [np.array(w) for w in net.model.get_weights()]}
    state = {"iteration": 0, "prev_k": k, "prev_labels": labels, "records": [], "stop_rule": {},
             "finished": False, "seed": 0}
    st.run("checkpoint", loop.Checkpoint(out, 0).save, net, state, best)
    per_sample = st.seconds["train_subset"] / (2 * m * int(cfg["epochs_per_iteration"]))
    rounds = [h for h in history if "round" in h]
    return {"mode": "stages", "preset": preset, "n": n, "box": particles.box, "precision": precision,
            "threads": args.threads, "seed_k": int(seeds.max()) + 1, "k_after_one_round": k,
            "seconds": st.seconds, "cpu_seconds": st.cpu, "anon_rss_mb_after": st.anon,
            "alignment_rounds": rounds, "alignment_log": lines,
            "train_subset_n": m, "train_samples_per_second": round(1 / per_sample, 2),
            "train_epoch_of_2n_projected_seconds": round(per_sample * 2 * n * int(cfg["epochs_per_iteration"]), 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "disk_mb": {"cache": round(du_mb(cache), 1), "checkpoint": round(du_mb(out), 1)}}


def repeated_star(path, times):
    """The STAR ``path`` with its data rows written ``times`` times (same folder, so the
    relative image paths still resolve)."""
    with open(path) as fh:
        lines = fh.read().splitlines()
    last_label = max(i for i, line in enumerate(lines) if line.startswith("_"))
    head, rows = lines[:last_label + 1], [line for line in lines[last_label + 1:] if line.strip()]
    out = os.path.splitext(path)[0] + f"_x{times}.star"
    with open(out, "w") as fh:
        fh.write("\n".join(head + rows * times) + "\n")
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("iteration", "stream", "stages"))
    p.add_argument("--star", required=True)
    p.add_argument("--work", required=True, help="scratch folder (cache, run output)")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--predict-n", type=int, default=0)
    p.add_argument("--train-n", type=int, default=2000, help="stages: train on this many")
    p.add_argument("--repeat", type=int, default=1, help="measure this many copies of the rows")
    p.add_argument("--preset", help="default: the preset `disca-engine cluster` uses by default")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    if args.repeat > 1:
        args.star = repeated_star(args.star, args.repeat)
    load_before = os.getloadavg()
    sampler = RssSampler()
    sampler.start()
    result = {"iteration": run_iteration, "stream": run_stream, "stages": run_stages}[args.mode](args)
    result.update(sampler.mb())
    result.update({"load_average_before": load_before, "load_average_after": os.getloadavg(),
                   "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                   "cpus": os.cpu_count(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())})
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
