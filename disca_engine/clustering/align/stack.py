"""The subtomograms as the alignment uses them (``AlignedStack``), and the missing wedge
found from their mean power."""
import copy

import numpy as np

from .backend import NUMPY
from .fourier import band, fourier_crop, freq_radius, half, half_weights, soft_sphere, unit_filtered
from .rotations import rotated_wedges


def estimate_wedge(power, s):
    """Measured Fourier voxels (full fftn layout, s^3): where the mean power of the data is
    above a tenth of its shell's 90th percentile (the missing wedge holds almost none).
    Not the median: a tilt range narrower than about +-45 degrees leaves more than half of
    every shell unmeasured, the median falls inside the wedge, and the whole shell would
    count as measured."""
    r = np.rint(freq_radius(s)).astype(int)
    measured = np.ones((s, s, s), bool)
    for k in range(1, r.max() + 1):
        shell = r == k
        measured[shell] = power[shell] > 0.1 * np.percentile(power[shell], 90)
    return measured


class AlignedStack:
    """The subtomograms held twice: coarse (Fourier-cropped, wedge and band filtered,
    unit norm, as band coefficients; for the rotation search) and full size (for
    translations and averages)."""

    def __init__(self, particles, coarse, coarse_shift, workers=1, k_max=None, batch_size=256,
                 indices=None, wedge=None, mask=None, backend=NUMPY):
        self.workers = max(1, int(workers))     # threads of the scans, averages, merge tests
        self.backend = backend                  # arrays of the scans (backend.py)
        self.s = int(particles.box)
        self.c = min(int(coarse), self.s)
        self.k_max = float(k_max or self.s / 3.0)
        vols, power = [], np.zeros((self.s,) * 3)
        for batch in particles.iter_batches(indices, batch_size):
            b = np.asarray(batch, np.float32)
            vols.append(b)
            if wedge is None:
                power += (np.abs(np.fft.fftn(b, axes=(1, 2, 3))) ** 2).sum(0)
        self.full = np.concatenate(vols)
        self.n = len(self.full)
        self.wedge = estimate_wedge(power / self.n, self.s) if wedge is None else wedge
        a = self.s // 2 - self.c // 2
        shifted = np.fft.fftshift(self.wedge)[a:a + self.c, a:a + self.c, a:a + self.c]
        self.wedge_c = np.fft.ifftshift(shifted)
        self.band_c = band(self.c, min(self.c / 2.0 - 1, self.k_max * self.c / self.s))
        self.band_f = band(self.s, self.k_max)
        # the coarse copies are kept as their band coefficients: a dot product over the few
        # hundred measured band voxels equals the real-space one over c^3 voxels (Parseval)
        measured = self.band_c & self.wedge_c
        self.band_idx, self.band_scale = band_basis(self.c, measured)
        self.coarse_band = np.concatenate([
            band_coefficients(unit_filtered(fourier_crop(self.full[i:i + batch_size], self.c),
                                            measured), self.c, self.band_idx, self.band_scale)
            for i in range(0, self.n, batch_size)])
        self.coarse_shift = int(coarse_shift)
        self.phases = shift_phases(self.c, self.band_idx, self.coarse_shift)
        self.mask = soft_sphere(self.s) if mask is None else mask   # of the references
        self._weights_grid = self._weights = None

    def subset(self, indices):
        """The same stack restricted to ``indices`` (copies of those rows only)."""
        sub = copy.copy(self)
        sub.full, sub.coarse_band = self.full[indices], self.coarse_band[indices]
        sub.n = len(sub.full)
        return sub

    def wedge_weights(self, grid):
        """(R, c^3) the coarse measured-voxel mask as seen by a reference turned by each grid
        rotation Q: W(Q k) (computed once for the grid a classification uses)."""
        if grid is not self._weights_grid:
            w = rotated_wedges(self.wedge_c, grid.transpose(0, 2, 1))
            self._weights_grid, self._weights = grid, w.reshape(len(grid), -1)
        return self._weights


def band_basis(c, mask):
    """Where a Fourier mask (full layout, c^3) lies on the rfftn half grid (flat indices),
    and the weights that make a dot product of band coefficients equal the real-space dot
    product of the filtered volumes (planes other than kx = 0 and Nyquist stand for two)."""
    on_half = half(mask)
    idx = np.flatnonzero(on_half)
    scale = np.sqrt(np.broadcast_to(half_weights(c), on_half.shape).ravel()[idx] / c ** 3)
    return idx, scale.astype(np.float32)


def band_coefficients(vols, c, idx, scale):
    """(B, M) complex band coefficients of real volumes (B, c^3) on a ``band_basis``."""
    f = np.fft.rfftn(np.asarray(vols, np.float32).reshape(-1, c, c, c), axes=(1, 2, 3))
    return (f.reshape(len(f), -1)[:, idx] * scale).astype(np.complex64)


def real_pair(f, xp=np):
    return xp.concatenate([f.real, f.imag], axis=1).astype(xp.float32)


def shift_phases(c, idx, t_max):
    """(T, M) phase ramps of the integer shifts |t| <= ``t_max`` in each axis on the band
    voxels ``idx``: multiplying band coefficients by one shifts the volume circularly."""
    f = np.fft.fftfreq(c) * c
    kz, ky, kx = np.meshgrid(f, f, np.fft.rfftfreq(c) * c, indexing="ij")
    k = np.stack([kz.ravel()[idx], ky.ravel()[idx], kx.ravel()[idx]], axis=1)
    span = np.arange(-int(t_max), int(t_max) + 1)
    t = np.stack(np.meshgrid(span, span, span, indexing="ij"), -1).reshape(-1, 3)
    return np.exp(-2j * np.pi * (t @ k.T) / c).astype(np.complex64)
