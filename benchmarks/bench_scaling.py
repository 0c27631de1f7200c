"""Cost of DISCA at large N, split by stage, with peak resident memory and disk.

Two measurements (each in its own process, so peak RSS belongs to that N alone):

``iteration``: one full iteration of the `disca-engine cluster` defaults (the CLI's default
preset) on a particles STAR: loading into the memory-mapped cache, features, PCA,
mixtures/K search, DDBI, head, training, checkpoint and the output files, from the loop's
own per-stage timers (checkpoint and outputs timed by wrapping them here).

``stages``: every stage of one default iteration at a large N, for when the whole iteration
does not fit the machine's time: on all N, the rotation-invariant descriptors, the seed
k-means, the alignment classification's stack, its initial references and **one** of its
rounds (a run makes 16-32 rounds and merge tests, then relabels and splits junk off; those
are left out), the network features, PCA, the mixture of the labels, DDBI, the head and the
checkpoint; training (one epoch of 2N in the default) on the first ``--train-n``
subtomograms, whose rate gives the epoch's time at N.

``stream``: features + K search + prediction with the stack memory-mapped from disk (never
whole in RAM): features of all N streamed through the network (untrained weights: the
cost is that of any iteration), PCA, the K search of the preset (auto, which has none,
with the BIC stage's defaults), then the prediction step after the network (PCA transform
+ mixture posteriors + labels) for all N. With ``--predict-n M`` the end-to-end `predict`
pass (features + posteriors + class sums, the code of `disca-engine predict`) is also run
over the first M subtomograms. ``--repeat R``
measures R copies of the STAR's rows (written beside it as ``<name>_xR.star``): 200,000
subtomograms from a 20,000 simulation, whose memory-mapped cache is then 200,000 rows.

Peak RSS is ru_maxrss after each stage (monotonic); the load average is read before and
after. Usage:
    python benchmarks/bench_scaling.py iteration --star S.star --work DIR --out R.json
    python benchmarks/bench_scaling.py stream --star S.star --work DIR --out R.json [--predict-n M]
    python benchmarks/bench_scaling.py stages --star S.star --work DIR --out R.json [--train-n M]
(``--preset NAME`` measures another preset; ``stages`` only one with classification stages.)
"""
import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


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
    from disca_engine.clustering import outputs
    from disca_engine.clustering.network.checkpoint import Checkpoint
    from disca_engine.clustering.run import run_cluster
    preset = args.preset or default_preset()
    extra = {}
    # the report times neither: wrapped (timing only) where run_cluster looks them up late
    Checkpoint.save = timed(Checkpoint.save, extra, "checkpoint")
    outputs.write_all = timed(outputs.write_all, extra, "outputs")
    out, cache = os.path.join(args.work, "run"), os.path.join(args.work, "cache")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    t0, c0 = time.perf_counter(), time.process_time()
    report = run_cluster(args.star, out, preset=preset, max_iterations=1, cache_dir=cache,
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


class Stages:
    """Wall and CPU seconds, peak and anonymous RSS (MB) after, of named stages run one after
    another; ``say``: a line per stage."""

    def __init__(self, say=True):
        self.seconds, self.cpu, self.rss, self.anon = {}, {}, {}, {}
        self.say = say

    def run(self, name, fn, *a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a, **k)
        self.seconds[name] = time.perf_counter() - t0
        self.cpu[name] = time.process_time() - c0
        self.rss[name], self.anon[name] = peak_rss_mb(), anon_mb()
        if self.say:
            print(f"[stages] {name}: {self.seconds[name]:.1f} s", flush=True)
        return out

    def rounded(self, what, digits, names=None):
        """One record (``seconds``, ``cpu``, ``rss``, ``anon``) rounded, its stages renamed
        by ``names`` where given."""
        names = names or {}
        return {names.get(k, k): round(v, digits) for k, v in getattr(self, what).items()}


def tensorflow_setup(threads):
    """TensorFlow set up as a run does (threads, automatic precision); returns (precision,
    strategy)."""
    from disca_engine.clustering.network import runtime
    runtime.configure_runtime(threads, None, 0)
    precision, _ = runtime.choose_precision("auto", 0.0)
    runtime.set_precision(precision)
    return precision, runtime.make_strategy()[0]


def first_rows(particles, m):
    """The first ``m`` subtomograms of a particle set (the same memory-mapped stack)."""
    from disca_engine.clustering.dataset import ParticleSet
    return ParticleSet(particles.table, particles.star_path, particles.volumes[:m],
                       particles.voxel_size)


# the stream's stages under their names in the memory and CPU records
STREAM_SHORT = {"load_to_cache": "load", "network_build_and_trace": "network"}


def run_stream(args):
    from disca_engine import settings as S
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.clustering.mixtures import select_k
    from disca_engine.clustering.network import model
    from disca_engine.clustering.network.training import compute_features
    preset = args.preset or default_preset()
    method = S.resolve(preset, threads=args.threads).method
    # auto selects no K by BIC: its K search is measured with the BIC stage's defaults
    bic = method.k_by_bic or S.KByBic()
    st, start = Stages(say=False), {"rss": peak_rss_mb(), "anon": anon_mb()}
    cache = os.path.join(args.work, "cache")
    particles = st.run("load_to_cache", load_particles, args.star, cache_dir=cache, min_box=None,
                       min_particles=2)
    precision, strategy = tensorflow_setup(args.threads)
    net = model.Network(method.network, max(method.k_range), particles.box, precision, strategy)
    net.reinitialise(0)
    n, batch_size = particles.n, method.network.batch_size
    st.run("network_build_and_trace", trace, net, particles, batch_size)
    features = st.run("features", compute_features, net, particles, batch_size)
    pca, Z = st.run("pca", fitted_pca, features, S.pca_components_for(method, n))
    mixture, _ = st.run("k_search", select_k, Z, method.k_range, seed=0, n_init=bic.n_init,
                        reg_covar=method.feature_pca.reg_covar,
                        max_fit_samples=bic.max_fit_samples, progress=False)
    labels = st.run("posteriors_all", posterior_labels, features, pca, mixture)
    result = {"mode": "stream", "preset": preset, "n": n, "box": particles.box, "precision": precision,
              "batch_size": batch_size, "feature_dim": method.network.feature_dim,
              "k_found": int(mixture.k), "k_candidates": list(method.k_range),
              "max_fit_samples": bic.max_fit_samples, "seconds": st.rounded("seconds", 2),
              "per_second": {"features": round(n / st.seconds["features"], 1),
                             "posteriors_all": round(n / st.seconds["posteriors_all"], 1)},
              "peak_rss_mb_after": {"start": round(start["rss"], 1),
                                    **st.rounded("rss", 1, STREAM_SHORT)},
              "anon_rss_mb_after": {"start": round(start["anon"], 1),
                                    **st.rounded("anon", 1, STREAM_SHORT)},
              "cpu_seconds": st.rounded("cpu", 2, STREAM_SHORT),
              "feature_bytes_per_subtomogram": int(features.nbytes // n + Z.nbytes // n + labels.nbytes // n),
              "cache_mb": round(du_mb(cache), 1)}
    if args.predict_n:
        result["predict_end_to_end"] = predict_pass(net, pca, mixture, first_rows(particles, args.predict_n))
    shutil.rmtree(cache, ignore_errors=True)
    return result


def trace(net, particles, batch_size):
    """Features of a full and of a partial batch: the graphs' tracing, a one-off cost per
    run, timed apart."""
    for size in (batch_size, 7):
        net.features(next(particles.iter_batches(None, size)))


def fitted_pca(features, d):
    import numpy as np
    from disca_engine.clustering.pca import fit_pca
    pca = fit_pca(features, d, seed=0)
    return pca, pca.transform(features).astype(np.float32)


def posterior_labels(features, pca, mixture):
    """The predict step after the network for all N, batched like predict."""
    import numpy as np
    labels = np.empty(len(features), np.int64)
    for a in range(0, len(features), 8192):
        proba = mixture.predict_proba(pca.transform(features[a:a + 8192]))
        labels[a:a + 8192] = np.argmax(proba, axis=1)
    return labels


def predict_pass(net, pca, mixture, subset):
    """The end-to-end `predict` pass (features, posteriors, class sums) over ``subset``."""
    from disca_engine.clustering.network import runtime
    from disca_engine.clustering.predict import classify_stream
    fn = runtime.inference_function(net.strategy, net.features_model)
    t0, c0 = time.perf_counter(), time.process_time()
    classify_stream(fn, pca, mixture, subset, 64, time.time())  # its progress uses time.time
    dt = time.perf_counter() - t0
    return {"n": subset.n, "seconds": round(dt, 2), "per_second": round(subset.n / dt, 1),
            "cpu_seconds": round(time.process_time() - c0, 2),
            "peak_rss_mb_after": round(peak_rss_mb(), 1)}


def run_stages(args):
    from disca_engine import settings as S
    from disca_engine.clustering.dataset import load_particles
    preset = args.preset or default_preset()
    method = S.resolve(preset, threads=args.threads).method
    if method.classification is None:
        raise SystemExit(f"stages: the {preset} preset has no classification stages (auto has); "
                         "measure it with `iteration` or `stream`")
    st, cache, out = Stages(), os.path.join(args.work, "cache"), os.path.join(args.work, "run")
    shutil.rmtree(out, ignore_errors=True)
    particles = st.run("load_to_cache", load_particles, args.star, cache_dir=cache, min_box=None,
                       min_particles=2)
    n = particles.n
    z, seeds, labels, history, lines = classification_stages(st, particles, method, args.threads)
    k = int(labels.max()) + 1
    m = min(args.train_n, n)
    precision = network_stages(st, particles, method, z, labels, m, args.threads, out)
    epochs = method.network.epochs_per_iteration
    per_sample = st.seconds["train_subset"] / (2 * m * epochs)
    return {"mode": "stages", "preset": preset, "n": n, "box": particles.box, "precision": precision,
            "threads": args.threads, "seed_k": int(seeds.max()) + 1, "k_after_one_round": k,
            "seconds": st.rounded("seconds", 2), "cpu_seconds": st.rounded("cpu", 2),
            "anon_rss_mb_after": st.rounded("anon", 1),
            "alignment_rounds": [h for h in history if "round" in h], "alignment_log": lines,
            "train_subset_n": m, "train_samples_per_second": round(1 / per_sample, 2),
            "train_epoch_of_2n_projected_seconds": round(per_sample * 2 * n * epochs, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "disk_mb": {"cache": round(du_mb(cache), 1), "checkpoint": round(du_mb(out), 1)}}


def classification_stages(st, particles, method, threads):
    """Descriptors, seed k-means and one alignment round; returns (descriptors, seeds,
    labels, the rounds' history, their log lines)."""
    from auto_seeds import descriptors_of, seed_clusters   # beside this script
    z = st.run("invariant_descriptors", descriptors_of, particles, method, 0)
    seeds = st.run("seed_kmeans", seed_clusters, z, method, 0)
    lines = []

    def log(message):  # the rounds' own timers, kept for the JSON
        print(message, flush=True)
        lines.append(message)

    labels, history = st.run("alignment_stack_references_and_one_round", one_round, particles,
                             seeds, z, method, threads, log)
    return z, seeds, labels, history, lines


def one_round(particles, seeds, z, method, threads, log):
    """The alignment stage's stack, initial references and one round (no merge test, nor
    the stages after it); above alignment.max_n on its subsample, the rest then aligned to
    its references (``rest.aligned_labels``: the rest stage's costlier way)."""
    from dataclasses import replace
    import numpy as np
    from disca_engine.clustering.dataset import Subset
    from disca_engine.clustering.stages import alignment, rest
    settings = replace(method.classification.alignment, rounds=1)
    sub = alignment.subsample(particles.n, settings, 0, log)
    if sub is None:
        classes = alignment.refine(particles, seeds, z, settings, method.min_cluster_size,
                                   threads, log)
        return classes.labels, classes.history
    classes = alignment.refine(Subset(particles, sub), seeds[sub], z[sub], settings,
                               method.min_cluster_size, threads, log)
    labels, others = np.empty(particles.n, np.int64), rest.others(particles.n, sub)
    labels[sub] = classes.labels
    refs = lambda: (classes.stack, classes.grid, classes.refs, None)  # noqa: E731
    labels[others] = rest.aligned_labels(particles, others, refs)
    return labels, classes.history


def network_stages(st, particles, method, z, labels, m, threads, out):
    """The network's stages of one iteration on the ``labels`` (training on the first ``m``
    subtomograms) and its checkpoint; returns the precision."""
    import numpy as np
    from disca_engine import settings as S
    from disca_engine.clustering.ddbi import ddbi
    from disca_engine.clustering.labels import label_smoothing
    from disca_engine.clustering.network import model, training
    from disca_engine.clustering.network.checkpoint import Checkpoint
    from disca_engine.clustering.network.labelling import mixture_from_labels
    from disca_engine.clustering.pca import fit_pca
    from disca_engine.clustering.pipeline import clustering_space
    n, k, settings = particles.n, int(labels.max()) + 1, method.network
    precision, strategy = tensorflow_setup(threads)
    net = st.run("network_build", model.Network, settings, max(method.k_range), particles.box,
                 precision, strategy)
    net.reinitialise(0)
    features = st.run("features", training.compute_features, net, particles, settings.batch_size)
    pca = st.run("pca", fit_pca, features, S.pca_components_for(method, n, k), seed=0)
    Z = pca.transform(features).astype(np.float32)
    mixture = st.run("mixture_of_the_labels", mixture_from_labels, Z, labels, k,
                     method.feature_pca.reg_covar)
    space = clustering_space(Z, z, method.classification.descriptors.weight)
    score = st.run("ddbi", ddbi, space, labels)
    alpha = label_smoothing(0, method.loop.label_smoothing, method.loop.smoothing_decay)
    st.run("head", training.train_head, net, features, labels, k, alpha, settings, 0, 0)
    st.run("train_subset", training.train_network, net, first_rows(particles, m), labels[:m], k,
           alpha, settings, 0, 0)
    proba = mixture.predict_proba(Z)
    best = {"iteration": 1, "ddbi": float(score), "k": k, "labels": labels,
            "posterior": proba[np.arange(n), labels].astype(np.float32), "pca": pca,
            "mixture": mixture, "features": features, "features_pca": Z,
            "weights": [np.array(w) for w in net.model.get_weights()]}
    state = {"iteration": 0, "prev_k": k, "prev_labels": labels, "records": [], "stop_rule": {},
             "finished": False, "seed": 0}
    st.run("checkpoint", Checkpoint(out, 0).save, net, state, best)
    return precision


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
