"""Label new subtomograms with a trained run: features (saved network, inference mode) ->
saved PCA -> saved mixture -> class of highest posterior.

Volumes are streamed batch by batch from a memory-mapped cache, so memory stays constant
in N; the classes keep the numbering of the training run (no cluster is dropped or
renumbered, unlike during training). The same pass sums each class's members, so the class
averages (``averages/class_NNN.mrc``, classes with members only) cost no second read.
With several devices the features run data parallel (``training.inference_function``).
"""
import json
import os
import shutil
import time

import numpy as np

from ..errors import EngineError
from ..io.atomic import atomic_path
from ..io.star import write_star
from .outputs import clusters_table


def log(message):
    print(message, flush=True)


def load_trained(model_dir, strategy=None):
    """(keras feature model, PCAModel, Mixture, report) of a finished ``cluster`` folder;
    the network's variables are created under ``strategy`` (mirrored on every replica)."""
    import contextlib
    from .stats import Mixture, PCAModel
    from .training import load_model
    paths = {name: os.path.join(model_dir, "model", name) for name in ("model.keras", "pca.npz", "gmm.npz")}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise EngineError(f"--model {model_dir}: not the output folder of a finished 'cluster' run "
                          f"(missing {', '.join(os.path.relpath(p, model_dir) for p in missing)})")
    import keras
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = load_model(paths["model.keras"])
        features = keras.Model(model.input, model.get_layer("features").output)
    report = {}
    report_path = os.path.join(model_dir, "report.json")
    if os.path.isfile(report_path):
        with open(report_path) as fh:
            report = json.load(fh)
    return features, PCAModel.load(paths["pca.npz"]), Mixture.load(paths["gmm.npz"]), report


def _run_precision(model_dir):
    try:
        with open(os.path.join(model_dir, "report.json")) as fh:
            return json.load(fh).get("precision") or "float32"
    except (OSError, ValueError):
        return "float32"


def predict(model_dir, input_star, output_dir, batch_size=64, threads=None, gpus=None,
            precision=None, cache_dir=None):
    """Classify the subtomograms of ``input_star``; write clusters.star, averages/ and
    summary.json."""
    from . import training
    from .dataset import load_particles
    t0 = time.time()
    outdir = os.path.abspath(output_dir)
    training.configure_runtime(threads, gpus, 0)  # bad --gpus fails before any output
    if precision is None:  # the run's own precision reproduces its labels
        precision = _run_precision(model_dir)
    precision, why = training.choose_precision(precision)
    training.set_precision(precision)
    strategy, where = training.make_strategy()
    features_model, pca, mixture, report = load_trained(model_dir, strategy)
    box = int(features_model.input.shape[1])
    os.makedirs(outdir, exist_ok=True)
    cache = cache_dir or os.path.join(outdir, "cache")
    particles = load_particles(input_star, cache_dir=cache, min_box=None, min_particles=1)
    if particles.box != box:
        raise EngineError(f"the model was trained on {box}^3 subtomograms but {input_star} has "
                          f"{particles.box}^3: extract boxes of {box} voxels")
    log(f"[predict] {particles.n} subtomograms of {box}^3, {precision} ({why}), {where}")
    labels, posterior, sums = classify_stream(training.inference_function(strategy, features_model),
                                              pca, mixture, particles, batch_size, t0)
    star_dir = os.path.dirname(os.path.abspath(particles.star_path))
    write_star(os.path.join(outdir, "clusters.star"),
               clusters_table(particles.table, labels, posterior, star_dir),
               comment=f"disca-engine predict with {os.path.abspath(model_dir)}")
    counts = np.bincount(labels, minlength=mixture.k)
    write_averages(outdir, sums, counts, particles.voxel_size)
    summary = {"model": os.path.abspath(model_dir), "input": os.path.abspath(input_star),
               "n_particles": int(particles.n), "k": int(mixture.k),
               "counts": {str(j + 1): int(c) for j, c in enumerate(counts)},
               "mean_posterior": float(posterior.mean()), "precision": precision,
               "devices": where, "seconds_total": round(time.time() - t0, 2)}
    if "discaTrueClass" in particles.table:
        from .metrics import ground_truth_block
        summary["ground_truth"] = ground_truth_block(particles.table.column("discaTrueClass", int), labels)
    with atomic_path(os.path.join(outdir, "summary.json")) as tmp:
        with open(tmp, "w") as fh:
            json.dump(summary, fh, indent=1)
    if not cache_dir:
        shutil.rmtree(cache, ignore_errors=True)
    return summary


def classify_stream(features_fn, pca, mixture, particles, batch_size, t0):
    """Labels, posteriors and per-class voxel sums in one streamed pass over the stack."""
    labels = np.empty(particles.n, np.int64)
    posterior = np.empty(particles.n, np.float32)
    sums = np.zeros((mixture.k,) + (particles.box,) * 3, np.float64)
    a = 0
    for batch in particles.iter_batches(None, batch_size):
        proba = mixture.predict_proba(pca.transform(features_fn(batch[..., None])))
        lab = np.argmax(proba, axis=1)
        labels[a:a + len(batch)] = lab
        posterior[a:a + len(batch)] = proba.max(axis=1)
        for j in np.unique(lab):
            sums[j] += batch[lab == j].sum(axis=0, dtype=np.float64)
        a += len(batch)
        if a % (50 * batch_size) < batch_size or a == particles.n:
            log(f"[predict] {a}/{particles.n} subtomograms classified ({time.time() - t0:.0f}s)")
    return labels, posterior, sums


def write_averages(outdir, sums, counts, voxel_size):
    """averages/class_NNN.mrc (1-based, the run's numbering) for classes with members."""
    from ..io.mrc import write_volume
    folder = os.path.join(outdir, "averages")
    shutil.rmtree(folder, ignore_errors=True)  # a rerun into the same folder: no stale classes
    for j in np.flatnonzero(counts):
        write_volume(os.path.join(folder, f"class_{j + 1:03d}.mrc"),
                     (sums[j] / counts[j]).astype(np.float32), voxel_size)
