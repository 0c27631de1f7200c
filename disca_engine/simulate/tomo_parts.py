"""What the two tomogram reconstructions (Fourier-space transfer in ``tomograms``, tilt
series and WBP in ``tomo_wbp``) share: the distractor volume, Fourier filtering with zero
padding, the signal variance in cubes around particles, and the result dict."""
import numpy as np
from scipy import fft as sfft

from . import geometry, optics
from .specimen import HEAD_OFFSET_A, HEAD_SIGMA_A, membrane_profile, paste_gold

# Zero padding per side before the FFT. Measured on two dense beads near the faces of a
# 96 x 256 x 256 volume against a 2x-padded reference: no padding 12% rms error (5% of the
# peak), 16 voxels 5.8% (1.4%), 32 voxels 4.1% (0.7%); the wedge PSF decays only as 1/r.
PAD = 32


def distractor_volume(shape, layout, voxel_a):
    vol = np.zeros(shape, np.float32)
    if layout.vesicle is not None:
        centre, radius = layout.vesicle
        reach = radius + (HEAD_OFFSET_A + 4 * HEAD_SIGMA_A + voxel_a) / voxel_a
        lo = np.maximum(np.floor(centre - reach).astype(int), 0)
        hi = np.minimum(np.ceil(centre + reach).astype(int) + 1, shape)
        if np.all(hi > lo):  # only the vesicle's bounding box, in float32
            z, y, x = (np.arange(a, b, dtype=np.float32) - np.float32(c)
                       for a, b, c in zip(lo, hi, centre))
            d = np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
            d -= np.float32(radius)
            near = np.abs(d) * voxel_a < HEAD_OFFSET_A + 4 * HEAD_SIGMA_A + voxel_a
            sub = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            sub[near] = membrane_profile(d[near].astype(np.float64) * voxel_a, voxel_a)
    for c in layout.gold:
        paste_gold(vol, c, voxel_a)
    return vol


def padded_shape(shape, pad):
    return tuple(sfft.next_fast_len(n + 2 * p, real=True) for n, p in zip(shape, pad))


def ctf_wedge(shape, voxel_a, defocus_um, tilt):
    """CTF x wedge on the rfftn grid of ``shape`` (float32)."""
    h = optics.ctf(shape, voxel_a, defocus_um)
    h *= optics.wedge_mask(shape, tilt)
    return h


def zero_padded(vol, pshape, pad):
    big = np.zeros(pshape, np.float32)
    big[tuple(slice(p, p + n) for p, n in zip(pad, vol.shape))] = vol
    return big


def crop(big, pad, shape):
    return np.ascontiguousarray(big[tuple(slice(p, p + n) for p, n in zip(pad, shape))])


def padded_filter(vol, transfer, pad):
    """Apply ``transfer`` (made for the padded shape) to ``vol`` zero-padded by ``pad``."""
    pshape = padded_shape(vol.shape, pad)
    spec = optics.rfftn3(zero_padded(vol, pshape, pad))
    spec *= transfer
    return crop(optics.irfftn3(spec, pshape), pad, vol.shape)


def cube_variance(vol, centres, box):
    vals = []
    for c in np.round(centres).astype(int):
        lo = np.maximum(c - box // 2, 0)
        hi = np.minimum(c - box // 2 + box, vol.shape)
        vals.append(vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].var())
    return float(np.mean(vals))


def reference_signal_var(temps, box, voxel_a, defocus_um, tilt):
    """Mean variance, in a centred cube of ``box`` voxels, of each class filtered alone
    (used to set the noise level of a tomogram without particles)."""
    size = 2 * max(box, max(2 * int(np.ceil(t.rmax)) + 3 for t in temps))
    vals = []
    for t in temps:
        vol = geometry.place(t, np.eye(3), np.zeros(3), size)
        filt = padded_filter(vol, ctf_wedge((size,) * 3, voxel_a, defocus_um, tilt), (0, 0, 0))
        c = size // 2 - box // 2
        vals.append(filt[c:c + box, c:c + box, c:c + box].var())
    return float(np.mean(vals))


def layout_result(layout, names, vol, signal_var, noise_var, clean=None):
    """``generate_tomogram``'s dict for a tomogram of ``layout``."""
    out = {"volume": vol, "centres": layout.centres,
           "labels": layout.labels, "class_names": names, "rotations": layout.rotations,
           "gold": [list(map(float, g)) for g in layout.gold],
           "vesicle": None if layout.vesicle is None else
           {"centre": list(map(float, layout.vesicle[0])), "radius": float(layout.vesicle[1])},
           "signal_var": signal_var, "noise_var": noise_var}
    if clean is not None:
        out["clean"] = clean
    return out
