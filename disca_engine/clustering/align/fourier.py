"""Fourier-space helpers of the alignment: frequency radii, band masks, half (rfftn) grids,
cropping, filtered unit-norm copies, spectra and their energies, shells.

Conventions: volumes are [z, y, x]; masks are in the full, unshifted fftn layout unless a
name says half (the rfftn grid). Numpy, except ``spectra`` and ``energy``, which also take
the arrays of the scans' backend (``backend.py``); no settings.
"""
import numpy as np


def freq_radius(s):
    f = np.fft.fftfreq(s) * s
    z, y, x = np.meshgrid(f, f, f, indexing="ij")
    return np.sqrt(z * z + y * y + x * x)


def fourier_crop(vols, c):
    """Down-sample (B, s, s, s) to (B, c, c, c) by keeping the |k| < c/2 block of the
    spectrum (an ideal low-pass; the real-space grid spacing grows by s / c)."""
    s = vols.shape[1]
    if c >= s:
        return np.asarray(vols, np.float32)
    f = np.fft.fftshift(np.fft.fftn(vols, axes=(1, 2, 3)), axes=(1, 2, 3))
    a = s // 2 - c // 2
    f = f[:, a:a + c, a:a + c, a:a + c]
    out = np.fft.ifftn(np.fft.ifftshift(f, axes=(1, 2, 3)), axes=(1, 2, 3)).real
    return (out * (c ** 3 / s ** 3)).astype(np.float32)


def band(s, k_max):
    r = freq_radius(s)
    return (r >= 1) & (r <= k_max)


def half(mask):
    """A full-layout Fourier mask (symmetric under k -> -k) on the rfftn half grid."""
    return mask[..., : mask.shape[-1] // 2 + 1]


def unit_filtered(vols, mask):
    """Filter (B, c, c, c) by a Fourier mask, flatten, and normalise each row to unit norm."""
    c = vols.shape[-1]
    f = np.fft.irfftn(np.fft.rfftn(np.asarray(vols, np.float32), axes=(1, 2, 3)) * half(mask),
                      s=(c, c, c), axes=(1, 2, 3))
    f = f.reshape(len(vols), -1).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True) + 1e-12
    return f


def soft_sphere(s, outer=None, width=2.0):
    """Soft spherical mask about the box centre: 1 out to ``outer - width`` voxels, a cosine
    edge to 0 at ``outer`` (default s/2 - 1, the largest sphere the box holds)."""
    ax = np.arange(s) - (s - 1) / 2.0
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    r = np.sqrt(z * z + y * y + x * x)
    edge = s / 2.0 - 1 if outer is None else float(outer)
    ramp = np.clip(r - (edge - width), 0, width) / width
    return np.clip(0.5 + 0.5 * np.cos(np.pi * ramp), 0, 1).astype(np.float32)


def spectra(vols, m, xp=np):
    """Half spectra (rfftn, float32 in -> complex64 out) of (B, s, s, s), times mask ``m``;
    ``xp``: the array module (numpy or jax.numpy)."""
    return xp.fft.rfftn(xp.asarray(vols, xp.float32), axes=(1, 2, 3)) * m


def energy(f, s):
    """Energy of each full spectrum from its rfftn half (B, s, s, s//2 + 1): planes other
    than kx = 0 and Nyquist stand for two."""
    return ((f.real ** 2 + f.imag ** 2) * half_weights(s)).sum((1, 2, 3))


def half_weights(s):
    """How many full-spectrum voxels each kx plane of an rfftn half grid stands for: two,
    except kx = 0 and (even s) Nyquist."""
    w = np.full(s // 2 + 1, 2.0, np.float32)
    w[0] = 1.0
    if s % 2 == 0:
        w[-1] = 1.0
    return w


def shift_window(s, t_max):
    d = np.abs(np.fft.fftfreq(s) * s)
    ok = (d[:, None, None] <= t_max) & (d[None, :, None] <= t_max) & (d[None, None, :] <= t_max)
    return np.flatnonzero(ok.ravel())


def shell_index(s, k_max):
    r = np.rint(freq_radius(s)).astype(int)
    return np.where((r >= 1) & (r <= k_max), r, 0)


def shell_corr(fa, fb, shells, n_shells, where=None):
    """Correlation of two spectra on each Fourier shell 1..n_shells, over the voxels
    ``where`` (bool, all when None)."""
    if where is not None:
        shells = np.where(where, shells, 0)

    def per_shell(v):
        return np.bincount(shells.ravel(), v.ravel(), minlength=n_shells + 1)[1:]
    num = per_shell(np.real(fa * np.conj(fb)))
    return num / np.sqrt(per_shell(np.abs(fa) ** 2) * per_shell(np.abs(fb) ** 2) + 1e-20)
