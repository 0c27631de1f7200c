"""Data of the interactive embedding (issue 24): 2-D embeddings of the subtomograms from the
network features and from the rotation-invariant descriptors, with each point's cluster,
posterior, image name and item id, and hover pictures. ``explorer_page.py`` draws it."""
import os

import numpy as np

from .. import contract
from . import thumbnails
from .embedding import _subsample, cached_embedding, method_name
from .html import hex_color

MAX_THUMBNAILS = 2000  # points with a hover picture (~1 kB each); the others show scores only
BATCH = 256            # boxes read at once for the pictures


def _spaces(run, out):
    """[(key, label, features file, cache file)] of the embeddings this folder allows."""
    found = []
    chosen = os.path.join(run.dir, contract.ITERATIONS_DIR, f"iter_{run.chosen_iteration:03d}",
                          contract.FEATURES_PCA)
    if os.path.isfile(chosen):   # the same cache as the static picture of that iteration
        found.append(("features", "network features", chosen,
                      os.path.join(out, "embedding", f"iter_{run.chosen_iteration:03d}.npz")))
    elif os.path.isfile(os.path.join(run.dir, contract.FEATURES_PCA)):
        found.append(("features", "network features", os.path.join(run.dir, contract.FEATURES_PCA),
                      os.path.join(out, "embedding", "explorer_features.npz")))
    desc = os.path.join(run.dir, contract.ITERATIONS_DIR, contract.DESCRIPTORS)
    if os.path.isfile(desc):
        found.append(("descriptors", "rotation-invariant descriptors", desc,
                      os.path.join(out, "embedding", "explorer_descriptors.npz")))
    return [s for s in found if np.load(s[2], mmap_mode="r").shape[0] == len(run.labels)]


def _unit(xy):
    """Each axis scaled to [0, 1], rounded to 4 decimals (what the page and its test use)."""
    xy = np.asarray(xy, np.float64)
    lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
    return np.round((xy - lo) / np.where(span > 0, span, 1.0), 4)


def _thumbnails(run, sub, seed):
    """{position in ``sub``: data URI} for at most MAX_THUMBNAILS of the shown points
    (a seeded random subset, the same on every run)."""
    pos = _subsample(len(sub), MAX_THUMBNAILS, seed + 1)
    out = {}
    for a in range(0, len(pos), BATCH):
        chunk = pos[a:a + BATCH]
        vols = run.read_members(sub[chunk])
        for p, vol in zip(chunk, vols):
            out[int(p)] = thumbnails.data_uri(vol)
    return out


def explorer_data(run, out, colors, max_points=2000, seed=0, progress=None):
    """The page's data (a JSON-able dict), or None when the folder keeps no features."""
    spaces = _spaces(run, out)
    if not spaces:
        return None
    n = len(run.labels)
    sub = _subsample(n, max_points, seed)
    embeddings = []
    for key, label, feats, cache in spaces:
        xy, reused = cached_embedding(feats, sub, seed, cache)
        embeddings.append({"key": key, "label": f"{label} ({method_name()})",
                           "xy": _unit(xy).ravel().tolist()})
        if progress:
            progress.log(f"explorer embedding of the {label} {'reused' if reused else 'done'}")
    thumbs = _thumbnails(run, sub, seed)
    t = run.table
    ids = t[contract.ITEM_ID] if contract.ITEM_ID in t else [""] * n
    return {"clusters": run.star_path, "total": n, "max_thumbnails": MAX_THUMBNAILS,
            "rows": [int(i) + 1 for i in sub], "names": [t[contract.IMAGE][i] for i in sub],
            "ids": [ids[i] for i in sub], "cls": [int(run.labels[i]) for i in sub],
            "post": [round(float(run.posteriors[i]), 3) for i in sub],
            "spaces": embeddings, "thumbs": {str(k): v for k, v in thumbs.items()},
            "colors": {str(c): hex_color(colors[c]) for c in run.classes},
            "sizes": {str(c): run.sizes[c] for c in run.classes}}
