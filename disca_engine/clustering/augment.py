"""Rotation augmentation of DISCA (self-supervised rotation invariance).

Every iteration each subtomogram gets one copy rotated by a fresh uniformly random 3D
rotation. Voxels of the copy whose source lies outside the box (the corners) are filled
with fresh N(0, 1) noise, never zeros: the subtomograms are normalised to zero mean and
unit variance, and a sharp zero edge would be learnt as a feature.

Conventions: volumes are ``[z, y, x]``; a matrix ``R`` acts on ``(x, y, z)`` coordinates
relative to the box centre ``(s - 1) / 2`` and rotates the *content*:
``out(p) = in(R^T p)``. Interpolation is trilinear (``order=1``) or nearest
(``order=0``), done for the whole batch at once with flat-index gathers in float32.
"""
import functools

import numpy as np


def random_rotation_matrices(n, rng):
    """``n`` rotation matrices (n, 3, 3) uniform on SO(3): normalised 4-D Gaussian vectors
    are uniform unit quaternions, which map uniformly onto rotations."""
    q = rng.standard_normal((int(n), 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=1)


@functools.lru_cache(maxsize=8)
def _grid(s):
    """Centred output coordinates (3, s^3) as (x, y, z) rows, in flat [z, y, x] order."""
    c = (s - 1) / 2.0
    z, y, x = np.meshgrid(*(np.arange(s, dtype=np.float32) - c,) * 3, indexing="ij")
    g = np.stack([x.ravel(), y.ravel(), z.ravel()])
    g.setflags(write=False)
    return g


def _chunk_size(s):
    # keep the per-chunk working set (a dozen float32/int arrays of chunk*s^3) near 16 MB
    return max(1, int(2 ** 18 // (s ** 3) * 1.0) or 1)


def rotate_volumes(volumes, matrices, rng, order=1, noise_std=1.0):
    """Rotate each cubic volume (B, s, s, s) by its matrix (B, 3, 3) about the box
    centre; returns float32 (B, s, s, s). Voxels whose source falls outside the box get
    fresh N(0, noise_std^2) noise from ``rng``."""
    vols = np.asarray(volumes, dtype=np.float32)
    mats = np.asarray(matrices, dtype=np.float32)
    if vols.ndim != 4 or not (vols.shape[1] == vols.shape[2] == vols.shape[3]):
        raise ValueError(f"volumes must be (B, s, s, s), got {vols.shape}")
    if mats.shape != (vols.shape[0], 3, 3):
        raise ValueError(f"need one 3x3 matrix per volume, got {mats.shape} for {vols.shape[0]} volumes")
    if order not in (0, 1):
        raise ValueError("order must be 0 (nearest) or 1 (trilinear)")
    b, s = vols.shape[0], vols.shape[1]
    out = np.empty_like(vols)
    step = _chunk_size(s)
    for a in range(0, b, step):
        _rotate_chunk(vols[a:a + step], mats[a:a + step], out[a:a + step], rng, order, noise_std)
    return out


def _rotate_chunk(vols, mats, out, rng, order, noise_std):
    b, s = vols.shape[0], vols.shape[1]
    n = s ** 3
    c = np.float32((s - 1) / 2.0)
    # source (x, y, z) of every output voxel: R^T p + c, as (b, 3, n)
    src = np.matmul(mats.transpose(0, 2, 1), _grid(s))
    src += c
    lim = np.float32(s - 1)
    inside = np.all((src >= 0) & (src <= lim), axis=1)                      # (b, n)
    flat_in = vols.reshape(-1)
    base = (np.arange(b, dtype=np.int64) * n)[:, None]
    res = out.reshape(b, n)
    if order == 0:
        i = np.clip(np.rint(src), 0, s - 1).astype(np.int64)
        idx = base + (i[:, 2] * s + i[:, 1]) * s + i[:, 0]
        np.take(flat_in, idx, out=res)
    else:
        i0 = np.clip(np.floor(src), 0, s - 2)                               # keep i0 + 1 inside
        f = src - i0                                                        # in [0, 1] where inside
        i0 = i0.astype(np.int64)
        idx = base + (i0[:, 2] * s + i0[:, 1]) * s + i0[:, 0]
        fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
        ss = s * s

        def g(off):
            return np.take(flat_in, idx + off)

        c00 = g(0);       c00 += fx * (g(1) - c00)
        c10 = g(s);       c10 += fx * (g(s + 1) - c10)
        c01 = g(ss);      c01 += fx * (g(ss + 1) - c01)
        c11 = g(ss + s);  c11 += fx * (g(ss + s + 1) - c11)
        c00 += fy * (c10 - c00)
        c01 += fy * (c11 - c01)
        c00 += fz * (c01 - c00)
        res[...] = c00
    outside = ~inside
    count = int(np.count_nonzero(outside))
    if count:
        noise = rng.standard_normal(count, dtype=np.float32)
        if noise_std != 1.0:
            noise *= np.float32(noise_std)
        res[outside] = noise
