"""Densities the specimen is built from (contrast against ice, e/A^3): rotated templates,
gold beads, the lipid-bilayer profile of membranes. Shared by the tomograms and the crowded
scenes of the tilt-series boxes."""
import numpy as np

from . import geometry

GOLD_RADIUS_A = 50.0        # 10 nm colloidal gold
GOLD_CONTRAST = 4.3         # e/A^3 above ice (gold 4.66, ice 0.334)
# lipid bilayer electron-density profile (e/A^3 relative to ice) across the membrane
HEAD_OFFSET_A, HEAD_SIGMA_A, HEAD_CONTRAST = 20.0, 4.0, 0.12
TAIL_SIGMA_A, TAIL_CONTRAST = 8.0, -0.05


def membrane_profile(d_a, voxel_a):
    """Bilayer contrast at signed distance ``d_a`` (A) from the mid-plane, averaged over
    one voxel (box filter) so thin layers are not aliased."""
    fine = np.linspace(-0.5, 0.5, 9) * voxel_a
    dd = d_a[..., None] + fine
    heads = np.exp(-0.5 * ((np.abs(dd) - HEAD_OFFSET_A) / HEAD_SIGMA_A) ** 2) * HEAD_CONTRAST
    tails = np.exp(-0.5 * (dd / TAIL_SIGMA_A) ** 2) * TAIL_CONTRAST
    return (heads + tails).mean(-1)


def paste(vol, temp, rot, centre):
    """Add ``temp`` rotated by ``rot`` with its centre of mass at ``centre`` (continuous)."""
    anchor = np.round(centre).astype(int)
    size = 2 * int(np.ceil(temp.rfull)) + 5
    local = geometry.place(temp, rot, centre - anchor, size)
    lo = anchor - size // 2
    src, dst = [], []
    for ax in range(3):
        a, b = max(lo[ax], 0), min(lo[ax] + size, vol.shape[ax])
        dst.append(slice(a, b))
        src.append(slice(a - lo[ax], b - lo[ax]))
    vol[tuple(dst)] += local[tuple(src)]


def paste_gold(vol, c, voxel_a):
    """Add a gold bead (GOLD_RADIUS_A, partial-volume edge) centred at ``c`` [z, y, x]."""
    gold_r = GOLD_RADIUS_A / voxel_a
    lo = np.maximum(np.floor(c - gold_r - 2).astype(int), 0)
    hi = np.minimum(np.ceil(c + gold_r + 3).astype(int), vol.shape)
    sub = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    d = np.sqrt(sum((s - c[i]) ** 2 for i, s in enumerate(sub)))
    occ = np.clip(gold_r + 0.5 - d, 0.0, 1.0)  # partial-volume edge
    vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] += GOLD_CONTRAST * occ
