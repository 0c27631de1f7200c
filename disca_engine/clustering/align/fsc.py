"""Fourier shell correlation of two half-set averages and the resolution it reads: the
spatial frequency where the curve first falls below 0.143 (the criterion for half maps:
it equals 0.5 between the full average and the true structure)."""
import numpy as np

from .fourier import shell_corr, shell_index

FSC_THRESHOLD = 0.143


def fsc_curve(half1, half2, mask=None):
    """(s // 2,) correlation of two (s, s, s) volumes (times ``mask``) on the Fourier shells
    1 .. s // 2 (the last one is Nyquist)."""
    s = half1.shape[-1]
    m = 1.0 if mask is None else mask
    n = s // 2
    fa, fb = np.fft.fftn(half1 * m), np.fft.fftn(half2 * m)
    return shell_corr(fa, fb, shell_index(s, n), n).astype(np.float64)


def crossing_shell(curve, threshold=FSC_THRESHOLD):
    """The shell (fractional, interpolated linearly) where ``curve`` (shells 1, 2, ...)
    first falls below ``threshold``; None when it starts below it (no resolution at all);
    inf when it never does (the curve reaches Nyquist above it)."""
    curve = np.asarray(curve, np.float64)
    below = np.flatnonzero(curve < threshold)
    if len(below) == 0:
        return float("inf")
    i = int(below[0])
    if i == 0:
        return None
    hi, lo = curve[i - 1], curve[i]
    return float(i + (hi - threshold) / (hi - lo))   # shell i (1-based) to shell i + 1


def resolution(curve, box, voxel_size, threshold=FSC_THRESHOLD):
    """(resolution in Å or in voxels without a voxel size, Nyquist-limited): the period
    box / shell at the crossing. A curve that never falls below ``threshold`` is limited by
    the sampling: the resolution is Nyquist (2 voxels) or better, and reported as Nyquist
    with the flag set. None for a curve below it from the first shell."""
    shell = crossing_shell(curve, threshold)
    unit = float(voxel_size) if voxel_size else 1.0
    if shell is None:
        return None, False
    if not np.isfinite(shell):
        return 2.0 * unit, True
    return float(box) / shell * unit, False


def band_reliability(half1, half2, mask=None):
    """Reliability of the full average, 2 r / (1 + r) (Spearman-Brown) from the correlation
    r of its two half-set averages over every shell up to Nyquist: about the squared
    correlation of the average with the noiseless structure. 0 for r <= 0."""
    m = 1.0 if mask is None else mask
    a, b = np.ravel(half1 * m), np.ravel(half2 * m)
    a, b = a - a.mean(), b - b.mean()
    r = float(a @ b / (np.sqrt((a @ a) * (b @ b)) + 1e-20))
    return max(0.0, 2 * r / (1 + r)) if r > 0 else 0.0
