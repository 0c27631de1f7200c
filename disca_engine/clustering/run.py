"""``disca-engine cluster`` as a function: check everything that needs no voxels, make the
run folder, run the method's restarts (``pipeline.run``) and write the outputs."""
import json
import os
import shutil
import time
from dataclasses import replace

from .. import contract
from .. import settings as S
from ..errors import EngineError, disk_errors, os_error_line
from . import rundir


def log(message):
    print(message, flush=True)


def run_cluster(input_star, output_dir, preset=contract.DEFAULT_PRESET, **overrides):
    """Run DISCA on a particles STAR file; write the output folder; return the report.
    ``overrides``: see ``settings.resolve``."""
    t_start = time.time()
    request = S.resolve(preset, **overrides)
    outdir = os.path.abspath(output_dir)
    init_model = None
    if request.options.init_model:
        init_network, init_model = read_init_model(request.options.init_model)
        network = replace(request.method.network, widths=tuple(init_network["widths"]),
                          feature_dim=int(init_network["feature_dim"]))
        request = replace(request, method=replace(request.method, network=network))
    fp, k_range = check_before_loading(input_star, outdir, request)
    from ..io.lock import FolderLock
    from .network import runtime
    opts = request.options
    with FolderLock(outdir, "cluster") as lock, disk_errors(outdir):  # the folder is read under the lock
        folder = rundir.RunFolder(outdir, opts, created=lock.created)
        if folder.resume:
            rundir.check_fingerprint(outdir, fp)
        runtime.configure_runtime(opts.threads, opts.gpus, opts.seed)  # bad --gpus: nothing written yet
        if folder.finished and folder.resume:
            log(f"{outdir} already holds this finished run (same input and settings); nothing to resume")
            with open(os.path.join(outdir, contract.REPORT_JSON)) as fh:
                return json.load(fh)
        if init_model is not None:
            log(f"initialising the network from {opts.init_model} (its architecture is used)")
        return _run_in(folder, input_star, request, k_range, init_model, fp, t_start)


def _run_in(folder, input_star, request, k_range, init_model, fp, t_start):
    """The run in its folder: nothing computed is lost, a failure before the first
    checkpoint leaves the folder as it was."""
    opts = request.options
    if not folder.resume:
        folder.start()
        rundir.save_fingerprint(folder.workdir, fp)
    cache = opts.cache_dir or os.path.join(folder.workdir, contract.CACHE_DIR)
    try:
        report = _run(input_star, folder.workdir, request, k_range, init_model, cache, t_start)
    except BaseException as exc:
        if not opts.cache_dir:
            shutil.rmtree(cache, ignore_errors=True)
        from .network.checkpoint import Checkpoint
        kept = folder.resume or Checkpoint(folder.workdir, 0).exists()
        if not kept:
            folder.abandon()  # nothing computed yet: leave the folder as it was
        if isinstance(exc, OSError) and kept and not folder.staged:
            raise EngineError(f"{os_error_line(exc, folder.workdir)}; the run's checkpoint is "
                              "kept: once that is fixed, continue it with --resume") from exc
        raise
    if not opts.cache_dir:
        shutil.rmtree(cache, ignore_errors=True)
    folder.commit()
    return report


def check_before_loading(input_star, outdir, request):
    """Every check that needs no voxels and no look inside the output folder, before
    anything is read or written (and before TensorFlow starts): output and cache locations,
    inputs they must not overwrite, K range for N, box for the network, free disk space
    (``diskspace``). Returns (fingerprint, the K range the run uses)."""
    from ..io.outdir import check_free_space, check_output_folder, refuse_overwriting_inputs
    from .dataset import peek_particles
    from .diskspace import cluster_needs
    opts = request.options
    check_output_folder(outdir)
    if opts.cache_dir:
        check_output_folder(opts.cache_dir, "--cache-dir")
    table, paths, box = peek_particles(input_star)
    refuse_overwriting_inputs([os.path.join(os.path.abspath(outdir), n)
                               for n in contract.CLUSTER_OUTPUTS + (contract.STAGING_DIR,)],
                              [("input", input_star)] + [("subtomogram", p) for p in paths])
    if opts.resume and opts.overwrite:
        raise EngineError("--resume and --overwrite contradict each other: give only one")
    k_range = S.check_k_range(request, len(paths))
    S.check_box(request.method, box)
    check_free_space(cluster_needs(outdir, len(paths), box, request.method, opts, max(k_range)))
    return rundir.fingerprint(input_star, table, paths, request), k_range


def read_init_model(folder):
    """(network settings of its report, keras model) of a finished run used to initialise
    the network."""
    report = os.path.join(folder or "", contract.REPORT_JSON)
    model_path = os.path.join(folder or "", contract.MODEL_DIR, "model.keras")
    if not (os.path.isfile(report) and os.path.isfile(model_path)
            and contract.is_finished_run(folder or "")):
        raise EngineError(f"--init-model {folder}: not the output folder of a finished 'cluster' "
                          "run (needs clusters.star, report.json and model/model.keras)")
    try:
        with open(report) as fh:
            network = json.load(fh)["settings"]["network"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"--init-model {folder}: cannot read the network settings of its "
                          f"report.json ({exc.__class__.__name__} {exc}); a run made by an older "
                          "disca-engine cannot be used: train one with this version")
    from .network.model import load_model
    return network, load_model(model_path)


def _run(input_star, workdir, request, k_range, init_model, cache, t_start):
    from . import outputs, pipeline
    from .dataset import load_particles
    from .network import loop, model, runtime
    from .network.yopo import forward_gflop
    method, opts = request.method, request.options
    particles = load_particles(input_star, cache_dir=cache,
                               min_box=2 * len(method.network.widths) + 1, min_particles=2)
    truth = None
    if contract.TRUE_CLASS in particles.table:
        truth = particles.table.column(contract.TRUE_CLASS, int, input_star)
    data = pipeline.network_input(particles, method)
    precision, why = runtime.choose_precision(
        opts.precision, forward_gflop(data.box, list(method.network.widths),
                                      method.network.feature_dim))
    runtime.set_precision(precision)
    strategy, where = runtime.make_strategy()
    log(f"DISCA ({method.preset} preset): {particles.n} subtomograms of {particles.box}^3, "
        f"K candidates {contract.format_k_range(k_range)}{_k_search_text(method, k_range, particles.n)}, "
        f"{precision} ({why}), {where}{_network_input_text(particles, data)}")
    net = model.Network(method.network, max(k_range), data.box, precision, strategy)
    init_weights = net.feature_weights_from(init_model) if init_model is not None else None
    runs = []
    for r in range(opts.restarts):
        seed = opts.seed + r
        iter_dir = (os.path.join(workdir, contract.ITERATIONS_DIR) if opts.restarts == 1 else
                    os.path.join(workdir, contract.RESTARTS_DIR, f"restart_{r:02d}",
                                 contract.ITERATIONS_DIR))
        restart = loop.Restart(workdir, iter_dir, r, opts.restarts, seed, opts.resume, truth,
                               init_weights)
        records, best = pipeline.run(net, data, method, restart, k_range, opts.seed,
                                     opts.threads)
        runs.append({"restart": r, "seed": seed, "records": records, "best": best,
                     "iter_dir": iter_dir})
        log(f"restart {r} (seed {seed}): lowest DDBI {best['ddbi']:.4f} at iteration "
            f"{best['iteration']} with K={best['k']}")
    chosen = min(runs, key=lambda one: one["best"]["ddbi"])
    chosen["best"] = pipeline.finish(chosen["best"])
    resolved = {"k_range": list(k_range)}
    if data is not particles:   # predict must show new data to the model the same way
        resolved["network_input"] = data.record()
    return outputs.write_all(workdir, particles, request, resolved, precision,
                             net, runs, chosen, truth, t_start)


def _network_input_text(particles, data):
    if data is particles:
        return ""
    return f"; the network sees the particle mask's {data.box}^3 crop"


def _k_search_text(method, k_range, n):
    c = method.classification
    if c is not None:
        limit = c.alignment.max_n
        if 0 < limit < n:
            return (f" (K: at most {max(k_range)} seed clusters, merged by the alignment "
                    f"merge test on a random subsample of {limit}, which the network learns; "
                    f"the other {n - limit} classified after, by {c.rest.by})")
        return (f" (K: at most {max(k_range)} seed clusters, merged by the alignment "
                f"merge test on all {n})")
    limit = method.k_by_bic.max_fit_samples
    if 0 < limit < n:
        return f" (K selected on a subsample of {limit}, the winner refitted on all {n})"
    return f" (K selected on all {n})"
