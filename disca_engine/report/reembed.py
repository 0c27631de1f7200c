"""Clusters re-embedded in their tomograms: slices with picks drawn as coloured circles,
and an MRC label map (each pick's sphere painted with its cluster number)."""
import os
from collections import OrderedDict

import mrcfile
import numpy as np

from .. import contract
from ..errors import EngineError
from ..io import mrc
from ..io.atomic import atomic_path
from .plots import plt, save

MAX_DISPLAY = 1024  # slices larger than this are shown subsampled


def parse_tomogram_args(items):
    """``NAME=PATH`` or ``PATH`` strings -> {name: path}; a bare path is named by its file stem."""
    mapping = {}
    for item in items or []:
        if "=" in item and not os.path.exists(item):
            name, path = item.split("=", 1)
        else:
            name, path = os.path.splitext(os.path.basename(item))[0], item
        mapping[name] = os.path.abspath(path)
    return mapping


def group_by_tomogram(run, tomograms=None):
    """OrderedDict tomogram name -> (path or None, row indices); empty without coordinates."""
    t = run.table
    if not all(f"rlnCoordinate{a}" in t for a in "XYZ"):
        return OrderedDict()
    names = t[contract.TOMO_NAME] if contract.TOMO_NAME in t else None
    files = t[contract.TOMO_FILE] if contract.TOMO_FILE in t else None
    if names is None and files is None:
        return OrderedDict()
    tomograms = tomograms or {}
    groups = OrderedDict()
    for i in range(len(t)):
        fpath = files[i] if files is not None else None
        name = names[i] if names is not None else os.path.splitext(os.path.basename(fpath))[0]
        if name not in groups:
            path = tomograms.get(name)
            if path is None and fpath:
                path = fpath if os.path.isabs(fpath) else os.path.normpath(os.path.join(run.star_dir, fpath))
            groups[name] = [path, []]
        groups[name][1].append(i)
    return OrderedDict((k, (v[0], np.array(v[1]))) for k, v in groups.items())


def _coords(run, rows):
    t = run.table
    return np.stack([t.column(f"rlnCoordinate{a}", float)[rows] for a in "ZYX"], axis=1)  # z, y, x


def _busiest_plane(values, size, radius):
    """Plane index crossing the most pick area: sum over picks of the squared radius of the
    cross-section, so planes through pick centres beat planes grazing their edges."""
    if len(values) == 0:
        return size // 2
    grid = np.arange(size)
    area = np.clip(radius ** 2 - (grid[:, None] - values[None, :]) ** 2, 0, None).sum(axis=1)
    return int(np.argmax(area)) if area.max() > 0 else size // 2


def _slab(vol, axis, index, thickness):
    lo = max(0, index - thickness // 2)
    hi = min(vol.shape[axis], lo + thickness)
    return np.asarray(np.take(vol, range(lo, hi), axis=axis), dtype=np.float32).mean(axis=axis)


def plot_tomogram(name, tomo_path, zyx, labels, radius, path, colors, voxel_size=None, slab=5):
    """Three orthogonal slab views through the busiest planes, picks as coloured circles."""
    shape = mrc.volume_shape(tomo_path)
    planes = [_busiest_plane(zyx[:, a], shape[a], radius) for a in range(3)]
    # memory-map in the file's own dtype: only the three slabs are read and converted
    with mrcfile.mmap(tomo_path, mode="r", permissive=True) as m:
        slabs = [_slab(m.data.reshape(shape), a, planes[a], slab) for a in range(3)]
    # (title, plane axis, image row axis, image column axis)
    views = [("xy", 0, 1, 2), ("xz", 1, 0, 2), ("yz", 2, 0, 1)]
    widths = [shape[2], shape[2], shape[1]]
    height = 12.0 * max(shape[1], shape[0]) / sum(widths) + 0.9
    fig, axes = plt.subplots(1, 3, figsize=(13, min(9.0, max(3.5, height))),
                             gridspec_kw={"width_ratios": widths},
                             squeeze=False)
    unit = f" (voxels of {voxel_size:.2f} Å)" if voxel_size else " (voxels)"
    for ax, (title, a, r, c) in zip(axes[0], views):
        img = slabs[a]
        step = max(1, int(np.ceil(max(img.shape) / MAX_DISPLAY)))
        img = img[::step, ::step]
        lo, hi = np.percentile(img, [1, 99])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower", interpolation="nearest",
                  extent=(-0.5, shape[c] - 0.5, -0.5, shape[r] - 0.5))
        d = np.abs(zyx[:, a] - planes[a])
        for p in np.flatnonzero(d < radius):
            rr = np.sqrt(radius ** 2 - d[p] ** 2)
            ax.add_patch(plt.Circle((zyx[p, c], zyx[p, r]), rr, fill=False, lw=1.3,
                                    color=colors.get(int(labels[p]), (1, 1, 1))))
        ax.set_title(f"{title} slab at {'zyx'[a]} = {planes[a]} ({slab} planes)", fontsize=9)
        ax.set_xlabel("xyz"[2 - c] + unit, fontsize=8)
        ax.set_ylabel("xyz"[2 - r] + unit, fontsize=8)
        ax.tick_params(labelsize=7)
    present = sorted(int(v) for v in np.unique(labels))
    handles = [plt.Line2D([], [], marker="o", ls="", mfc="none", mew=1.5, color=colors[k],
                          label=f"{k} (n={int(np.sum(labels == k))})") for k in present]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="cluster",
               fontsize=8)
    fig.suptitle(f"{name}: {len(labels)} picks, shape z,y,x = {shape}; circles = picks crossing "
                 "the slab, radius = half box", fontsize=10)
    fig.tight_layout()
    return save(fig, path), planes


def _sphere(radius):
    r = int(np.ceil(radius))
    g = np.arange(-r, r + 1)
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    return (zz ** 2 + yy ** 2 + xx ** 2) <= radius ** 2, r


def write_label_map(tomo_path, zyx, labels, posteriors, radius, path, voxel_size=None):
    """MRC the tomogram's shape: 0 background, each pick's sphere painted with its cluster
    number (int8 up to 127 clusters, else int16). Confident picks are painted last, so they
    win where spheres overlap. Returns the number of picks outside the volume."""
    shape = mrc.volume_shape(tomo_path)
    dtype = np.int8 if int(labels.max(initial=0)) <= 127 else np.int16
    mask, r = _sphere(radius)
    outside = 0
    with atomic_path(path) as tmp:
        with mrcfile.new_mmap(tmp, shape=shape, mrc_mode=0 if dtype == np.int8 else 1,
                              overwrite=True) as out:
            out.data[...] = 0
            for p in np.argsort(posteriors, kind="stable"):
                centre = np.rint(zyx[p]).astype(int)
                if np.any(centre < 0) or np.any(centre >= np.array(shape)):
                    outside += 1
                    continue
                lo = centre - r
                src = tuple(slice(max(0, -l), mask.shape[0] - max(0, l + mask.shape[0] - s))
                            for l, s in zip(lo, shape))
                dst = tuple(slice(max(0, l), min(s, l + mask.shape[0])) for l, s in zip(lo, shape))
                region = out.data[dst]
                region[mask[src]] = labels[p]
            if voxel_size:
                out.voxel_size = float(voxel_size)
            out.update_header_stats()
    return outside


def reembed(run, outdir, colors, tomograms=None, progress=None):
    """Per tomogram: slices PNG + label map. Returns a list of dicts for the HTML."""
    groups = group_by_tomogram(run, tomograms)
    radius = (run.box_size or 24) / 2.0
    results = []
    for name, (tomo_path, rows) in groups.items():
        entry = {"name": name, "tomogram": tomo_path, "picks": int(len(rows))}
        results.append(entry)
        if not tomo_path or not os.path.isfile(tomo_path):
            entry["warning"] = (f"tomogram file not found ({tomo_path}); pass it with "
                                f"--tomograms {name}=PATH")
            continue
        try:
            vs = mrc.voxel_size(tomo_path) or run.voxel_size
            zyx, labels = _coords(run, rows), run.labels[rows]
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            entry["png"], entry["planes"] = plot_tomogram(
                name, tomo_path, zyx, labels, radius,
                os.path.join(outdir, f"reembed_{safe}.png"), colors, vs)
            entry["labelmap"] = os.path.join(outdir, "labelmaps", f"{safe}_labels.mrc")
            entry["outside"] = write_label_map(tomo_path, zyx, labels, run.posteriors[rows], radius,
                                               entry["labelmap"], vs)
            if entry["outside"]:
                entry["warning"] = (f"{entry['outside']} picks lie outside the tomogram: are the "
                                    "coordinates in this tomogram's voxels (same binning)?")
        except EngineError as exc:
            entry["warning"] = str(exc)
        if progress:
            progress.log(f"re-embedded {len(rows)} picks in {name}")
    return results
