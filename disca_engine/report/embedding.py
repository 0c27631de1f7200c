"""2D embeddings (t-SNE, or UMAP when installed) of the features of every iteration,
coloured by cluster and cached per iteration (re-running the report recomputes none)."""
import hashlib
import os

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..io.atomic import atomic_path
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


def cached_embedding(feats_path, sub, seed, cache_path):
    """2D embedding of the rows ``sub`` of ``feats_path``; reused from ``cache_path`` (.npz)
    while the features file, the subsample, the seed and the method are unchanged.
    Returns (xy, reused)."""
    st = os.stat(feats_path)
    key = "|".join([method_name(), str(seed), str(st.st_size), str(st.st_mtime_ns),
                    hashlib.sha1(np.ascontiguousarray(sub, dtype=np.int64)).hexdigest()])
    if os.path.isfile(cache_path):
        try:
            with np.load(cache_path) as old:
                if str(old["key"]) == key:
                    return old["xy"], True
        except (OSError, ValueError, KeyError):
            pass  # unreadable or older cache: recompute and replace it
    feats = np.load(feats_path, mmap_mode="r")
    xy = embed(np.asarray(feats)[sub], seed=seed)
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    with atomic_path(cache_path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, xy=xy, key=np.array(key))
    return xy, False


def _subsample(n, max_points, seed):
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False)) if n > max_points else np.arange(n)


def _draw(ax, xy, shown, colors, npts):
    cols = np.array([colors.get(c, UNMATCHED) if c else UNMATCHED for c in shown])
    ax.scatter(xy[:, 0], xy[:, 1], c=cols, s=6 if npts > 500 else 14, lw=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{method_name()} 1")
    ax.set_ylabel(f"{method_name()} 2")


def _legend(fig, run, colors):
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[c],
                          label=f"{c} (n={run.sizes[c]})") for c in run.classes]
    handles.append(plt.Line2D([], [], marker="o", ls="", color=UNMATCHED, label="no final match"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="cluster",
               fontsize=8, ncol=1 if len(handles) <= 22 else 2)


def iteration_embeddings(run, out, max_points=2000, seed=0, progress=None):
    """{iteration: (xy, shown cluster per point, K)} for EVERY iteration, cached in
    ``out/embedding/iter_NNN.npz``; plus (subsample, number computed now)."""
    n = len(run.labels)
    sub = _subsample(n, max_points, seed)
    result, computed = {}, 0
    for it, folder in run.iterations:
        feats_path = os.path.join(folder, "features_pca.npy")
        labels = one_based(np.load(os.path.join(folder, "labels.npy")))
        rows = np.load(feats_path, mmap_mode="r").shape[0]
        if rows != n or len(labels) != n:
            if progress:
                progress.log(f"embedding of iteration {it} skipped: {rows} rows, clusters.star has {n}")
            continue
        xy, reused = cached_embedding(feats_path, sub, seed,
                                      os.path.join(out, "embedding", f"iter_{it:03d}.npz"))
        computed += not reused
        mapping = match_to_final(labels, run.labels) if it != run.chosen_iteration else \
            {c: c for c in np.unique(labels)}
        shown = np.array([mapping[lab] for lab in labels[sub]])
        result[it] = (xy, shown, len(np.unique(labels)))
        if progress:
            progress.log(f"embedding of iteration {it} {'reused' if reused else 'done'}")
    return result, sub, computed


def _title(run, it, k):
    return f"iteration {it}{' (chosen)' if it == run.chosen_iteration else ''}: K = {k}"


def plot_embeddings(run, path, colors, max_points=2000, seed=0, progress=None):
    """One PNG per iteration (``embedding/iter_NNN.png`` beside ``path``) and an overview
    ``path`` of the first, a middle and the chosen iteration; returns facts or None."""
    out = os.path.dirname(os.path.abspath(path))
    embs, sub, computed = iteration_embeddings(run, out, max_points, seed, progress)
    if not embs:
        return None
    frames = []
    for it, (xy, shown, k) in sorted(embs.items()):
        fig, ax = plt.subplots(figsize=(5.6, 4.6))
        _draw(ax, xy, shown, colors, len(sub))
        ax.set_title(_title(run, it, k))
        _legend(fig, run, colors)
        fig.tight_layout()
        frames.append((it, save(fig, os.path.join(out, "embedding", f"iter_{it:03d}.png")), k))
    chosen = pick_iterations(sorted(embs), run.chosen_iteration)
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.3 * len(chosen), 4.4), squeeze=False)
    for ax, it in zip(axes[0], chosen):
        xy, shown, k = embs[it]
        _draw(ax, xy, shown, colors, len(sub))
        ax.set_title(_title(run, it, k))
    _legend(fig, run, colors)
    fig.tight_layout()
    save(fig, path)
    return {"path": path, "iterations": chosen, "frames": frames, "computed": computed,
            "points": int(len(sub)), "total": int(len(run.labels)), "method": method_name()}
