"""Run-level plots: BIC vs K, K and DDBI per iteration, cluster sizes, confusion matrix.

Every figure uses :func:`cluster_colors` so a cluster has the same colour everywhere in
the report (plots, embeddings, montages, re-embedded tomograms).
"""
import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from ..io.atomic import atomic_path  # noqa: E402

DPI = 110


def cluster_colors(k):
    """{cluster number 1..k: RGB tuple}; tab10/tab20 for up to 20 clusters, then a hue wheel."""
    if k <= 10:
        cmap = plt.get_cmap("tab10")
        cols = [cmap(i)[:3] for i in range(k)]
    elif k <= 20:
        cmap = plt.get_cmap("tab20")
        cols = [cmap(i)[:3] for i in range(k)]
    else:
        cmap = plt.get_cmap("hsv")
        cols = [cmap(i / k)[:3] for i in range(k)]
    return {c + 1: cols[c] for c in range(k)}


def save(fig, path):
    """Write a figure atomically as PNG and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def _bic_record(run):
    """The BIC sweep shown: the chosen iteration's, else the last earlier one that swept K."""
    for rec in sorted(run.info.get("iterations", []), key=lambda r: -int(r["iteration"])):
        if int(rec["iteration"]) <= run.chosen_iteration and len(rec.get("bic") or {}) >= 1:
            if len(rec["bic"]) >= 2 or int(rec["iteration"]) == run.chosen_iteration:
                return rec
    return None


def plot_bic(run, path):
    rec = _bic_record(run)
    if rec is None:
        return None
    ks = sorted(int(k) for k in rec["bic"])
    bic = [float(rec["bic"][str(k)]) for k in ks]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.plot(ks, bic, "o-", color="0.3")
    chosen = int(rec.get("k", ks[int(np.argmin(bic))]))
    if chosen in ks:
        ax.plot([chosen], [bic[ks.index(chosen)]], "o", ms=12, mfc="none", mec="crimson", mew=2,
                label=f"chosen K = {chosen}")
        ax.legend(loc="best")
    ax.set_xlabel("number of clusters K")
    ax.set_ylabel("BIC (lower is better)")
    ax.set_xticks(ks)
    ax.set_title(f"Gaussian-mixture BIC, iteration {rec['iteration']}")
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_iterations(run, path):
    recs = sorted(run.info.get("iterations", []), key=lambda r: int(r["iteration"]))
    if not recs:
        return None
    it = [int(r["iteration"]) for r in recs]
    ks = [int(r["k"]) for r in recs]
    ddbi = [float(r["ddbi"]) if r.get("ddbi") is not None else np.nan for r in recs]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.step(it, ks, where="mid", color="tab:blue", lw=2, label="K")
    ax.plot(it, ks, "o", color="tab:blue")
    ax.set_xlabel("iteration")
    ax.set_ylabel("number of clusters K", color="tab:blue")
    ax.set_ylim(0, max(ks) + 1)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax2 = ax.twinx()
    ax2.plot(it, ddbi, "s--", color="tab:orange", label="DDBI")
    ax2.set_ylabel("DDBI (lower is better)", color="tab:orange")
    ax.axvline(run.chosen_iteration, color="crimson", lw=1.5, ls=":")
    # inside the axes (axes-fraction height), on the side with room: never clipped
    ax.annotate(f" chosen: {run.chosen_iteration} ", (run.chosen_iteration, 0.97),
                xycoords=("data", "axes fraction"), color="crimson", va="top",
                ha="left" if run.chosen_iteration < max(it) else "right")
    ax.set_xticks(it if len(it) <= 25 else it[::max(1, len(it) // 12)])
    ax.set_title("K and distortion-based Davies-Bouldin index per iteration")
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_sizes(run, path, colors):
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(run.classes) + 2), 3.6))
    sizes = [run.sizes[c] for c in run.classes]
    bars = ax.bar([str(c) for c in run.classes], sizes, color=[colors[c] for c in run.classes],
                  edgecolor="0.2")
    for b, s in zip(bars, sizes):
        ax.annotate(str(s), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                    va="bottom", fontsize=8)
    ax.set_xlabel("cluster")
    ax.set_ylabel("subtomograms")
    ax.set_title(f"Cluster sizes (N = {len(run.labels)}, K = {len(run.classes)})")
    ax.margins(y=0.12)
    return save(fig, path)


def confusion(labels, truth):
    """(matrix clusters x true classes, cluster list, class list)."""
    cl = sorted(int(c) for c in np.unique(labels))
    tc = sorted(int(t) for t in np.unique(truth))
    m = np.zeros((len(cl), len(tc)), dtype=int)
    for i, c in enumerate(cl):
        for j, t in enumerate(tc):
            m[i, j] = int(np.sum((labels == c) & (truth == t)))
    return m, cl, tc


def plot_confusion(run, path, truth, names):
    m, cl, tc = confusion(run.labels, truth)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(tc) + 2.5), max(3.0, 0.4 * len(cl) + 1.5)))
    frac = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(len(cl)):
        for j in range(len(tc)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if frac[i, j] > 0.6 else "black", fontsize=8)
    ax.set_xticks(range(len(tc)))
    ax.set_xticklabels([names.get(t, str(t)) for t in tc], rotation=30, ha="right")
    ax.set_yticks(range(len(cl)))
    ax.set_yticklabels([f"{c} (n={run.sizes[c]})" for c in cl])
    ax.set_xlabel("true class")
    ax.set_ylabel("cluster")
    ax.set_title("Clusters vs ground truth (shade: fraction of the cluster)")
    return save(fig, path)


def plot_decoder_loss(info, path):
    """The decoder's training loss (mean MSE per epoch) against gradient steps, with the
    variance of the targets: the MSE of predicting the mean box, which training must beat."""
    curve = (info or {}).get("loss_curve") or {}
    steps, loss = curve.get("steps") or [], curve.get("loss") or []
    if not steps:
        return None
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    ax.plot(steps, loss, "o-", ms=3, color="tab:blue", label="training MSE (epoch mean)")
    var = info.get("variance_of_targets")
    if var is not None:
        ax.axhline(var, ls=":", color="tab:red", label=f"variance of the targets ({var:.3f})")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("mean squared error")
    ax.set_title(f"Decoder training: {info.get('epochs_run')} epochs, {info.get('steps')} steps, "
                 f"{info.get('seconds_train', 0):.0f} s (stopped by {info.get('stopped_by', '?')})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)
