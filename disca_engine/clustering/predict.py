"""Label new subtomograms with a trained run: features (saved network, inference mode) ->
saved PCA -> saved mixture -> class of highest posterior.

Volumes are streamed batch by batch from a memory-mapped cache, so memory stays constant
in N; the classes keep the numbering of the training run (no cluster is dropped or
renumbered, unlike during training). The same pass sums each class's members, so the class
averages (``averages/class_NNN.mrc``, classes with members only) cost no second read.
With several devices the features run data parallel (``network.runtime.inference_function``).
"""
import json
import os
import time

import numpy as np

from ..errors import EngineError
from .. import contract
from ..io.jsonfile import finite, write_json
from ..io.star import read_blocks, write_star
from .outputs import clusters_table


def log(message):
    print(message, flush=True)


def check_model_folder(model_dir):
    """The run's files, checked before TensorFlow is imported; returns its report (or {})."""
    paths = [os.path.join(model_dir, contract.MODEL_DIR, name) for name in contract.MODEL_FILES]
    missing = [p for p in paths + [os.path.join(model_dir, contract.CLUSTERS_STAR)] if not os.path.isfile(p)]
    if missing:
        raise EngineError(f"--model {model_dir}: not the output folder of a finished 'cluster' run "
                          f"(missing {', '.join(os.path.relpath(p, model_dir) for p in missing)}; "
                          f"{contract.CLUSTERS_STAR} is written last)")
    try:
        with open(os.path.join(model_dir, contract.REPORT_JSON)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def load_trained(model_dir, strategy=None):
    """(keras feature model, PCAModel, Mixture, report) of a finished ``cluster`` folder;
    the network's variables are created under ``strategy`` (mirrored on every replica)."""
    import contextlib
    from .mixtures import Mixture
    from .network.model import load_model
    from .pca import PCAModel
    report = check_model_folder(model_dir)
    model_path = os.path.join(model_dir, contract.MODEL_DIR)
    import keras
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = load_model(os.path.join(model_path, "model.keras"))
        features = keras.Model(model.input, model.get_layer("features").output)
    return (features, PCAModel.load(os.path.join(model_path, "pca.npz")),
            Mixture.load(os.path.join(model_path, "gmm.npz")), report)


def _run_precision(model_dir):
    try:
        with open(os.path.join(model_dir, contract.REPORT_JSON)) as fh:
            return json.load(fh).get("precision") or "float32"
    except (OSError, ValueError):
        return "float32"


def check_before_loading(model_dir, input_star, output_dir, batch_size, cache_dir=None):
    """Model, input, box, output and cache locations and their free space, checked before
    TensorFlow or any voxel is loaded (what the folder holds is read under its lock)."""
    from ..io.mrc import voxel_size as mrc_voxel_size
    from ..io.outdir import check_free_space, check_output_folder, refuse_overwriting_inputs
    from .dataset import peek_particles
    from .diskspace import predict_needs
    if batch_size < 1:
        raise EngineError(f"--batch-size {batch_size}: must be at least 1")
    report = check_model_folder(model_dir)
    outdir = check_output_folder(output_dir)
    if cache_dir:
        check_output_folder(cache_dir, "--cache-dir")
    _, paths, box = peek_particles(input_star)
    refuse_overwriting_inputs([os.path.join(outdir, n) for n in PREDICT_WRITES + (contract.STAGING_DIR,)],
                              [("input", input_star)] + [("subtomogram", p) for p in paths],
                              folders=[("model's run folder", model_dir)])
    trained = report.get("box_size")
    if trained and int(trained) != box:
        raise EngineError(f"the model was trained on {trained}^3 subtomograms but {input_star} has "
                          f"{box}^3: extract boxes of {trained} voxels")
    check_voxel_size(report.get("voxel_size"), mrc_voxel_size(paths[0]), input_star)
    k = int(report.get("k") or len(report.get("cluster_sizes") or ()) or 1)
    check_free_space(predict_needs(outdir, cache_dir, len(paths), box, k, os.path.getsize(input_star)))
    return outdir


def check_voxel_size(trained, given, input_star, tolerance=0.02):
    """A model sees structures at the scale it was trained on: the same box at another
    voxel size holds a different part of the particle."""
    if trained and given and abs(given - trained) > tolerance * trained:
        raise EngineError(f"the model was trained at {trained:g} A/voxel but {input_star} is at "
                          f"{given:g} A/voxel: extract (or rescale) the subtomograms at {trained:g} "
                          "A/voxel, or train a model on this data")


# what predict writes in its folder; cache/ goes before the swap
PREDICT_WRITES = tuple(n for n in contract.PREDICT_OUTPUTS if n not in (contract.CACHE_DIR,
                                                                         contract.RUN_MANIFEST))


def earlier_output(outdir):
    """The names of an earlier predict output in ``outdir`` (replaced by --overwrite); names
    predict writes that are there without one are the user's, and refused."""
    present = [n for n in PREDICT_WRITES if os.path.lexists(os.path.join(outdir, n))]
    if any(n in present for n in (contract.CLUSTERS_STAR, contract.SUMMARY_JSON)):
        return present
    if present:
        raise EngineError(f"{outdir} holds {', '.join(present)} that disca-engine predict did not "
                          "write: move them away or choose another --output (nothing was changed)")
    return []


def predict(model_dir, input_star, output_dir, batch_size=64, threads=None, gpus=None,
            precision=None, cache_dir=None, overwrite=False):
    """Classify the subtomograms of ``input_star``; write averages/, summary.json, then
    clusters.star (last: the completion marker) under ``OUTPUT/.disca-new``, swapped in when
    complete: a failed run leaves an earlier output as it was."""
    t0 = time.time()
    outdir = check_before_loading(model_dir, input_star, output_dir, batch_size, cache_dir)
    from ..errors import disk_errors
    from ..io.lock import FolderLock
    from ..io.manifest import remove, swap_in
    from ..io.outdir import refuse_existing
    from .network import runtime
    with FolderLock(outdir, "predict"), disk_errors(outdir):  # the folder is read under the lock
        if not overwrite:
            refuse_existing(outdir, (contract.CLUSTERS_STAR, contract.SUMMARY_JSON), "predict")
        previous = earlier_output(outdir)
        runtime.configure_runtime(threads, gpus, 0)  # bad --gpus fails before any output
        work = os.path.join(outdir, contract.STAGING_DIR)
        remove(work)  # left by a killed earlier run
        cache = cache_dir or os.path.join(work, contract.CACHE_DIR)
        try:
            summary = _predict(model_dir, input_star, work, batch_size, precision, cache, t0)
            if not cache_dir:
                remove(cache)
            swap_in(outdir, work, previous, marker=contract.CLUSTERS_STAR)
        except BaseException:
            remove(work)
            raise
        return summary


def _predict(model_dir, input_star, outdir, batch_size, precision, cache, t0):
    from .network import runtime
    from .dataset import load_particles
    if precision is None:  # the run's own precision reproduces its labels
        precision = _run_precision(model_dir)
    precision, why = runtime.choose_precision(precision)
    runtime.set_precision(precision)
    # the new input is validated (every voxel) before the model is loaded
    particles = load_particles(input_star, cache_dir=cache, min_box=None, min_particles=1)
    strategy, where = runtime.make_strategy()
    features_model, pca, mixture, report = load_trained(model_dir, strategy)
    shown = model_input(report, particles, int(features_model.input.shape[1]), model_dir)
    log(f"[predict] {particles.n} subtomograms of {particles.box}^3, {precision} ({why}), {where}")
    labels, posterior, sums = classify_stream(runtime.inference_function(strategy, features_model),
                                              pca, mixture, particles, batch_size, t0, shown)
    counts = np.bincount(labels, minlength=mixture.k)
    write_averages(outdir, sums, counts, particles.voxel_size)
    summary = {"model": os.path.abspath(model_dir), "input": os.path.abspath(input_star),
               "n_particles": int(particles.n), "k": int(mixture.k),
               "counts": {str(j + 1): int(c) for j, c in enumerate(counts)},
               "mean_posterior": float(posterior.mean()), "precision": precision,
               "devices": where, "seconds_total": round(time.time() - t0, 2)}
    if contract.TRUE_CLASS in particles.table:
        from .metrics import ground_truth_block
        summary["ground_truth"] = ground_truth_block(particles.table.column(contract.TRUE_CLASS, int), labels)
    write_json(os.path.join(outdir, contract.SUMMARY_JSON), summary)
    # last: a folder with clusters.star holds a finished run
    write_star(os.path.join(outdir, contract.CLUSTERS_STAR),
               clusters_table(particles.table, labels, posterior, particles.star_path),
               blocks=read_blocks(particles.star_path),
               comment=f"disca-engine predict with {os.path.abspath(model_dir)}")
    return finite(summary)


def model_input(report, particles, model_box, model_dir):
    """How the model saw its training boxes (``resolved.network_input``: the particle mask
    and crop of auto), applied to ``particles``; None when it saw the boxes as they are."""
    seen = (report.get("resolved") or {}).get("network_input")
    view = None
    if seen:
        from .align.mask import MaskedView
        view = MaskedView(particles, float(seen["radius_voxels"]))
    if (view.box if view else particles.box) != model_box:
        raise EngineError(f"{model_dir}: its model takes {model_box}^3 boxes but these "
                          f"subtomograms give {view.box if view else particles.box}^3; its "
                          "report.json does not match its model: retrain")
    return view


def classify_stream(features_fn, pca, mixture, particles, batch_size, t0, view=None):
    """Labels, posteriors and per-class voxel sums (of the whole boxes) in one streamed pass
    over the stack; the model sees each batch through ``view`` (``model_input``) if given."""
    labels = np.empty(particles.n, np.int64)
    posterior = np.empty(particles.n, np.float32)
    sums = np.zeros((mixture.k,) + (particles.box,) * 3, np.float64)
    a = 0
    for batch in particles.iter_batches(None, batch_size):
        shown = batch if view is None else view.masked(batch)
        proba = mixture.predict_proba(pca.transform(features_fn(shown[..., None])))
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
    """averages/class_NNN.mrc (1-based, the run's numbering) for classes with members, in
    the run's fresh staging folder (no stale class stays)."""
    from ..io.mrc import write_volume
    folder = os.path.join(outdir, contract.AVERAGES_DIR)
    for j in np.flatnonzero(counts):
        write_volume(os.path.join(folder, f"class_{j + 1:03d}.mrc"),
                     (sums[j] / counts[j]).astype(np.float32), voxel_size)
