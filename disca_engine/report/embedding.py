"""2D embeddings (t-SNE, or UMAP when installed) of the features of a few iterations,
coloured by cluster."""
import numpy as np
from scipy.optimize import linear_sum_assignment

from .plots import plt, save
from .run import one_based

UNMATCHED = (0.75, 0.75, 0.75)


def method_name():
    try:
        import umap  # noqa: F401
        return "UMAP"
    except ImportError:
        return "t-SNE"


def embed(x, seed=0):
    """2D embedding of the rows of ``x`` (UMAP if importable, else scikit-learn t-SNE)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):  # BLAS threads fight each other on busy machines
        return _embed(x, seed)


def _embed(x, seed):
    x = np.asarray(x, dtype=np.float64)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    if method_name() == "UMAP":
        import umap
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    from sklearn.manifold import TSNE
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    # exact t-SNE is cheap and steady for a few hundred points; Barnes-Hut beyond that.
    # 500 iterations are enough for a picture (measured ~6 s CPU for 2000 points here).
    method = "exact" if len(x) <= 500 else "barnes_hut"
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto", method=method, max_iter=500).fit_transform(x)


def pick_iterations(numbers, chosen):
    """First, a middle and the chosen iteration (unique, in order)."""
    if not numbers:
        return []
    before = [n for n in numbers if n <= chosen] or numbers
    picks = [before[0], before[len(before) // 2], chosen if chosen in numbers else before[-1]]
    return sorted(set(picks))


def match_to_final(labels, final):
    """Map this iteration's cluster numbers onto the final ones by maximum overlap
    (Hungarian), so a cluster that persists keeps its colour; others map to 0."""
    mine = sorted(np.unique(labels))
    theirs = sorted(np.unique(final))
    overlap = np.array([[np.sum((labels == a) & (final == b)) for b in theirs] for a in mine])
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {a: 0 for a in mine}
    for r, c in zip(rows, cols):
        if overlap[r, c] > 0:
            mapping[mine[r]] = theirs[c]
    return mapping


def plot_embeddings(run, path, colors, max_points=2000, seed=0, progress=None):
    """One panel per selected iteration; returns (path, caption facts) or None."""
    numbers = [n for n, _ in run.iterations]
    chosen = pick_iterations(numbers, run.chosen_iteration)
    if not chosen:
        return None
    folders = dict(run.iterations)
    n = len(run.labels)
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(n, size=max_points, replace=False)) if n > max_points else np.arange(n)
    final = run.labels
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.3 * len(chosen), 4.4), squeeze=False)
    for ax, it in zip(axes[0], chosen):
        feats = np.load(f"{folders[it]}/features_pca.npy", mmap_mode="r")
        labels = one_based(np.load(f"{folders[it]}/labels.npy"))
        if len(feats) != n or len(labels) != n:
            ax.set_axis_off()
            ax.set_title(f"iteration {it}: {len(feats)} rows, clusters.star has {n}")
            continue
        xy = embed(np.asarray(feats)[sub], seed=seed)
        mapping = match_to_final(labels, final) if it != run.chosen_iteration else \
            {c: c for c in np.unique(labels)}
        shown = np.array([mapping[lab] for lab in labels[sub]])
        cols = np.array([colors.get(c, UNMATCHED) if c else UNMATCHED for c in shown])
        ax.scatter(xy[:, 0], xy[:, 1], c=cols, s=6 if len(sub) > 500 else 14, lw=0)
        k_it = len(np.unique(labels))
        tag = " (chosen)" if it == run.chosen_iteration else ""
        ax.set_title(f"iteration {it}{tag}: K = {k_it}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{method_name()} 1")
        ax.set_ylabel(f"{method_name()} 2")
        if progress:
            progress.log(f"embedding of iteration {it} done")
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[c],
                          label=f"{c} (n={run.sizes[c]})") for c in run.classes]
    handles.append(plt.Line2D([], [], marker="o", ls="", color=UNMATCHED, label="no final match"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="cluster",
               fontsize=8, ncol=1 if len(handles) <= 22 else 2)
    fig.tight_layout()
    save(fig, path)
    return {"path": path, "iterations": chosen, "points": int(len(sub)), "total": int(n),
            "method": method_name()}
