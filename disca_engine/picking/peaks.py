"""Local maxima above a threshold, and greedy minimum-distance suppression.

Threshold first: only voxels above the threshold are candidates, and each candidate is
compared with its 26 neighbours through flat indices, dropping losers after every
comparison. This touches a few percent of the volume instead of running a full
maximum_filter (about 7x faster here, same peaks). Ties on a plateau keep the voxel with
the lowest flat index, so a plateau gives exactly one peak.
"""
import numpy as np
from scipy.spatial import cKDTree

# faces first: they eliminate most candidates, so later comparisons see few
_OFFSETS = sorted(((dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if (dz, dy, dx) != (0, 0, 0)), key=lambda o: sum(map(abs, o)))


def local_maxima(dog, threshold, border, chunk=16, z_limits=None):
    """Peaks of ``dog`` strictly inside ``border`` (voxels per axis, each >= 1) with value
    > threshold. ``z_limits`` = (lo, hi) restricts the z-planes searched (for slabs).
    Returns (zyx int array N x 3, values)."""
    dog = np.ascontiguousarray(dog)
    nz, ny, nx = dog.shape
    bz, by, bx = (max(1, int(b)) for b in border)
    zlo, zhi = bz, nz - bz
    if z_limits is not None:
        zlo, zhi = max(zlo, z_limits[0], 1), min(zhi, z_limits[1], nz - 1)
    if zlo >= zhi or ny - 2 * by <= 0 or nx - 2 * bx <= 0:
        return np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.float32)
    flat = dog.reshape(-1)
    offsets = [(dz * ny + dy) * nx + dx for dz, dy, dx in _OFFSETS]
    found, values = [], []
    for z0 in range(zlo, zhi, chunk):
        z1 = min(zhi, z0 + chunk)
        # flatnonzero on whole planes is ~8x faster than nonzero on a strided 3D view
        idx = np.flatnonzero(dog[z0:z1] > threshold) + z0 * ny * nx
        yy, xx = (idx // nx) % ny, idx % nx
        idx = idx[(yy >= by) & (yy < ny - by) & (xx >= bx) & (xx < nx - bx)]
        v = flat[idx]
        for off in offsets:
            nb = flat[idx + off]
            keep = (v > nb) if off < 0 else (v >= nb)
            idx, v = idx[keep], v[keep]
            if idx.size == 0:
                break
        found.append(idx)
        values.append(v)
    idx = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    vals = np.concatenate(values) if values else np.zeros(0, dtype=np.float32)
    zyx = np.stack(np.unravel_index(idx, dog.shape), axis=1).astype(np.int64)
    return zyx, vals


def suppress(points, scores, min_distance):
    """Greedy non-maximum suppression: walk peaks from the highest score down, keep a peak
    unless a kept one lies within ``min_distance``. Returns indices of kept peaks, sorted by
    score (highest first).

    Done in vectorised rounds that give exactly the sequential greedy result: a peak whose
    score beats all its undecided neighbours is kept (no higher neighbour can still be kept),
    and its neighbours are dropped.
    """
    n = len(scores)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    if n == 0 or min_distance <= 0:
        return order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, 0, -1)  # unique; higher score -> higher rank
    pairs = cKDTree(np.asarray(points, dtype=np.float64)).query_pairs(
        float(min_distance), output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    del pairs
    UNDECIDED, KEPT, DROPPED = 0, 1, 2
    state = np.zeros(n, dtype=np.int8)
    while True:
        undecided = state == UNDECIDED
        if not undecided.any():
            break
        has_higher = np.zeros(n, dtype=bool)
        has_higher[i[rank[j] > rank[i]]] = True
        new = undecided & ~has_higher
        state[new] = KEPT
        state[j[new[i]]] = DROPPED
        alive = (state[i] == UNDECIDED) & (state[j] == UNDECIDED)
        i, j = i[alive], j[alive]
    kept = np.flatnonzero(state == KEPT)
    return kept[np.argsort(-rank[kept], kind="stable")]
