"""Central xy/xz/yz slices of cluster averages, decoded centres and member subtomograms."""
import numpy as np

from .plots import plt, save

VIEWS = ("xy", "xz", "yz")


def central_slices(vol, slab=1):
    """The three orthogonal central planes of a [z, y, x] volume, each the mean of ``slab``
    neighbouring planes (a thin slab is easier to read than one noisy plane)."""
    vol = np.asarray(vol, dtype=np.float32)
    out = []
    for axis in range(3):
        c = vol.shape[axis] // 2
        lo, hi = max(0, c - slab // 2), min(vol.shape[axis], c - slab // 2 + slab)
        out.append(np.take(vol, range(lo, hi), axis=axis).mean(axis=axis))
    # axis 0 -> xy plane (y rows), axis 1 -> xz (z rows), axis 2 -> yz (z rows)
    return dict(zip(VIEWS, out))


def _show(ax, img):
    lo, hi = np.percentile(img, [1, 99]) if img.size > 1 else (0, 1)
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower",
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _frame(ax, color):
    for s in ax.spines.values():
        s.set_edgecolor(color)
        s.set_linewidth(3)


def cluster_montage(run, c, path, color, decoded=None, max_members=6, slab=1):
    """Rows xy/xz/yz; columns: average, decoded centre (if given), then the members closest
    to and farthest from the cluster centre in feature space, with their distance d."""
    columns = []
    avg, label = run.average(c)
    if avg is not None:
        columns.append((label, avg))
    if decoded is not None:
        columns.append(("decoded centre", decoded))
    framed = len(columns)  # average and decoded centre get the cluster's colour frame
    columns += _member_columns(run, c, max_members)
    if not columns:
        return None
    fig, axes = plt.subplots(3, len(columns), figsize=(1.45 * len(columns) + 0.6, 4.9),
                             squeeze=False)
    for j, (title, vol) in enumerate(columns):
        planes = central_slices(vol, slab)
        for i, view in enumerate(VIEWS):
            ax = axes[i, j]
            _show(ax, planes[view])
            if j < framed:
                _frame(ax, color)
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(view, fontsize=9)
    fig.suptitle(f"Cluster {c}: {run.sizes[c]} subtomograms; box {_box_text(run)}",
                 color=color, fontsize=10, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return save(fig, path)


def pick_members(ranked, distances, max_members):
    """[(row, title)]: the members closest to the centre, then the farthest ones (about half
    each), so the montage shows both the typical member and the cluster's outskirts."""
    n = len(ranked)
    if distances is None:  # no features: best posteriors only
        return [(row, f"member {i}") for i, row in enumerate(ranked[:max_members], 1)]
    near = n if n <= max_members else (max_members + 1) // 2
    picks = list(range(near)) + list(range(max(near, n - (max_members - near)), n))
    return [(ranked[i], (f"closest {i + 1}" if i < near else f"farthest {n - i}")
             + f"\nd={distances[i]:.2f}") for i in picks]


def _member_columns(run, c, max_members):
    ranked, distances, _ = run.ranked_members(c)
    chosen = pick_members(ranked, distances, max_members)
    rows = [row for row, _ in chosen]
    vols = run.read_members(rows) if rows else []
    titles = [t if distances is not None else f"{t}\np={run.posteriors[row]:.2f}" for row, t in chosen]
    return list(zip(titles, vols))


def _box_text(run):
    if not run.box_size:
        return "?"
    if run.voxel_size:
        return f"{run.box_size}³ voxels = {run.box_size * run.voxel_size:.0f} Å"
    return f"{run.box_size}³ voxels"


def averages_overview(run, path, colors, decoded=None, slab=1):
    """One row per cluster: xy/xz/yz of the average, then of the decoded centre."""
    decoded = decoded or {}
    rows = list(run.classes)
    if not rows:
        return None
    ncol = 3 + (3 if decoded else 0)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.25 * ncol + 1.2, 1.3 * len(rows) + 0.8),
                             squeeze=False)
    for i, c in enumerate(rows):
        vols = [("average", run.average(c)[0])]
        if decoded:
            vols.append(("decoded", decoded.get(c)))
        for block, (what, vol) in enumerate(vols):
            planes = central_slices(vol, slab) if vol is not None else {}
            for v, view in enumerate(VIEWS):
                ax = axes[i, 3 * block + v]
                if view in planes:
                    _show(ax, planes[view])
                    _frame(ax, colors[c])
                else:
                    ax.set_axis_off()
                if i == 0:
                    ax.set_title(f"{what} {view}", fontsize=8)
        axes[i, 0].set_ylabel(f"{c}\nn={run.sizes[c]}", rotation=0, ha="right", va="center",
                              fontsize=9, color=colors[c], fontweight="bold")
    fig.suptitle(f"Cluster averages{' and decoded centres' if decoded else ''}; box {_box_text(run)}",
                 fontsize=10)
    # the top band is the title's, so it cannot sit on the column headings
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return save(fig, path)
