"""The ``cluster`` output folder (docs/engine-contract.md): clusters.star, features, model
files, class averages, plots and, written last, report.json (a folder without it is not a
finished run)."""
import json
import os
import shutil
import time

import numpy as np

from .. import __version__, contract
from .. import settings as S
from ..io.atomic import atomic_path
from ..io.jsonfile import finite, write_json
from ..io.manifest import record_written
from ..io.images import ImageResolver
from ..io.mrc import write_volume
from ..io.star import StarTable, read_blocks, write_star
from .cluster_quality import report_block


def log(message):
    print(message, flush=True)


def save_npy(path, array):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def clusters_table(table, labels, posterior, star_path):
    """All input columns in input order + 1-based class and its posterior. Image names
    become absolute: they were relative to the input STAR (``star_path``), not to the
    output folder."""
    out = StarTable(dict(table.columns), name=table.name or "particles")
    resolver = ImageResolver(star_path)
    out[contract.IMAGE] = [resolver.absolute_name(n) for n in table[contract.IMAGE]]
    out[contract.CLASS] = [int(v) + 1 for v in labels]
    out[contract.POSTERIOR] = [f"{float(p):.6f}" for p in posterior]
    return out


def class_averages(particles, labels, k, batch_size=256):
    """Mean volume of each cluster's members, streamed in batches."""
    sums = np.zeros((k,) + (particles.box,) * 3, np.float64)
    counts = np.bincount(labels, minlength=k)
    a = 0
    for batch in particles.iter_batches(None, batch_size):
        lab = labels[a:a + len(batch)]
        for j in np.unique(lab):
            sums[j] += batch[lab == j].sum(axis=0)
        a += len(batch)
    return (sums / np.maximum(counts, 1)[:, None, None, None]).astype(np.float32)


def write_all(outdir, particles, request, resolved, precision, net, runs, chosen, truth, t_start):
    best = chosen["best"]
    k = int(best["mixture"].k)
    labels = np.asarray(best["labels"], np.int64)
    save_npy(os.path.join(outdir, "features.npy"), best["features"].astype(np.float32))
    save_npy(os.path.join(outdir, "features_pca.npy"), best["features_pca"].astype(np.float32))
    model_dir = os.path.join(outdir, "model")
    os.makedirs(model_dir, exist_ok=True)
    net.model.set_weights(best["weights"])
    net.save_model(os.path.join(model_dir, "model.keras"))
    best["pca"].save(os.path.join(model_dir, "pca.npz"))
    best["mixture"].save(os.path.join(model_dir, "gmm.npz"))
    averages = class_averages(particles, labels, k)
    for j in range(k):
        write_volume(contract.average_path(outdir, j + 1), averages[j],
                     particles.voxel_size)
    if len(runs) > 1:
        final = os.path.join(outdir, "iterations")
        shutil.rmtree(final, ignore_errors=True)
        shutil.copytree(chosen["iter_dir"], final)
    report = build_report(particles, request, resolved, precision, runs, chosen, truth, t_start)
    # measured after the final labels are known, on unmasked boxes about the particle's size
    radius = resolved.get("network_input", {}).get("radius_voxels")
    report.update(report_block(particles, labels, best["features_pca"], request.method,
                               request.options, chosen["records"], log, radius))
    report["seconds_total"] = round(time.time() - t_start, 2)
    write_plots(os.path.join(outdir, "plots"), report)
    write_json(os.path.join(outdir, contract.REPORT_JSON), report)
    # what this run wrote, not every name a run could write (report/ is added by its writer)
    record_written(outdir, "cluster", [n for n in contract.CLUSTER_OUTPUTS if n != contract.REPORT_DIR],
                   also=[contract.CLUSTERS_STAR])
    # last: a folder with clusters.star holds a finished run (the completion marker)
    write_star(os.path.join(outdir, contract.CLUSTERS_STAR),
               clusters_table(particles.table, labels, best["posterior"], particles.star_path),
               blocks=read_blocks(particles.star_path),
               comment=f"disca-engine {__version__} cluster: K={k}, iteration {best['iteration']}, "
                       f"restart {chosen['restart']}")
    return json.loads(json.dumps(finite(report)))


def build_report(particles, request, resolved, precision, runs, chosen, truth, t_start):
    """report.json: the settings the run used (only the stages of its preset), the run
    options, what the run worked out from the data (``resolved``: the K range N supports),
    the precision used, the iterations and the result."""
    best = chosen["best"]
    labels = np.asarray(best["labels"])
    k = int(best["mixture"].k)
    report = {
        "engine_version": __version__, "preset": request.method.preset,
        "settings": S.as_dict(request.method), "options": S.as_dict(request.options),
        "resolved": resolved,
        "input": os.path.abspath(particles.star_path), "n_particles": int(particles.n),
        "box_size": int(particles.box), "voxel_size": particles.voxel_size,
        "seed": int(request.options.seed), "precision": precision,
        "iterations": chosen["records"],
        "chosen_iteration": int(best["iteration"]), "k": k, "ddbi": float(best["ddbi"]),
        "cluster_sizes": np.bincount(labels, minlength=k).tolist(),
        "restarts": [{"restart": r["restart"], "seed": r["seed"], "chosen_iteration": r["best"]["iteration"],
                      "k": r["best"]["k"], "ddbi": r["best"]["ddbi"], "iterations": len(r["records"]),
                      **({"iteration_records": r["records"]} if r is not chosen else {})}
                     for r in runs],
        "chosen_restart": int(chosen["restart"]),
        "seconds_total": round(time.time() - t_start, 2),
    }
    if "rest" in best:    # classes found on a subsample: how the others were classified
        report["rest"] = best["rest"]
    if truth is not None:
        from .metrics import ground_truth_block
        report["ground_truth"] = ground_truth_block(truth, labels)
    return report


def write_plots(folder, report):
    """BIC vs K of the chosen iteration, K and DDBI per iteration, cluster sizes (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    recs = report["iterations"]
    chosen = next(r for r in recs if r["iteration"] == report["chosen_iteration"])

    def save(fig, name):
        with atomic_path(os.path.join(folder, name)) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ks = sorted(int(k) for k in chosen["bic"])
    ax.plot(ks, [chosen["bic"][str(k)] for k in ks], "o-")
    ax.axvline(chosen["k"], color="tab:red", ls="--", label=f"K={chosen['k']}")
    ax.set(xlabel="K", ylabel="BIC", title=f"BIC, iteration {chosen['iteration']}")
    ax.legend()
    fig.tight_layout()
    save(fig, "bic.png")

    its = [r["iteration"] for r in recs]
    fig, ax1 = plt.subplots(figsize=(5, 3.5))
    ax1.plot(its, [r["k"] for r in recs], "o-", color="tab:blue")
    ax1.set(xlabel="iteration", ylabel="K")
    from matplotlib.ticker import MaxNLocator
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax1.twinx()
    ax2.plot(its, [r["ddbi"] for r in recs], "s--", color="tab:orange")
    ax2.set_ylabel("DDBI (lower is better)")
    ax2.axvline(report["chosen_iteration"], color="gray", ls=":")
    fig.tight_layout()
    save(fig, "iterations.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    sizes = report["cluster_sizes"]
    ax.bar(range(1, len(sizes) + 1), sizes)
    ax.set(xlabel="class", ylabel="subtomograms", title=f"cluster sizes (K={len(sizes)})")
    fig.tight_layout()
    save(fig, "cluster_sizes.png")
