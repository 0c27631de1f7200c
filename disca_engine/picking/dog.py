"""Difference of Gaussians by FFT, in z-chunks with halos.

DoG = G(sigma1) * v - G(sigma2) * v with sigma1 < sigma2. In Fourier space this is one
multiplication by T(f) = g1(f) - g2(f), g(f) = exp(-2 pi^2 sigma^2 |f|^2), so one rfftn and
one irfftn replace two spatial Gaussian filters (about 5x faster on a 1 GiB tomogram here).
T(0) = 0, so the DoG ignores constant offsets. Each chunk gets a halo of ceil(4 sigma2)
real planes (mirror-padded at the volume's faces, like scipy.ndimage's 'reflect' mode) so
that chunk seams and the FFT's periodic wrap never reach the kept planes.

``sign`` = +1 gives the plain DoG (bright blobs positive); -1 makes dark blobs positive.
"""
import os

import numpy as np
import scipy.fft as sfft

# Voxels per padded chunk: bounds the FFT working set (input, spectrum, output) to about
# 3 x 4 bytes x this = 768 MiB, whatever the tomogram size.
DEFAULT_CHUNK_VOXELS = 64 * 1024 * 1024


def halo_for(sigma2):
    return int(np.ceil(4.0 * sigma2))


def default_workers():
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _gauss_tf(freqs, sigma):
    return np.exp(-2.0 * np.pi ** 2 * sigma ** 2 * freqs.astype(np.float64) ** 2)


def dog_block(block, sigma1, sigma2, sign=1.0, workers=None):
    """DoG of one (already padded) block; the block may be overwritten."""
    workers = workers or default_workers()
    shape = block.shape
    fshape = [sfft.next_fast_len(int(n), real=True) for n in shape]
    block = np.asarray(block, dtype=np.float32)
    block -= np.float32(block.mean())  # keeps the zero padding from making a step
    spec = sfft.rfftn(block, s=fshape, workers=workers, overwrite_x=True)
    del block
    fz = sfft.fftfreq(fshape[0])
    fy = sfft.fftfreq(fshape[1])
    fx = sfft.rfftfreq(fshape[2])
    gz1, gz2 = sign * _gauss_tf(fz, sigma1), sign * _gauss_tf(fz, sigma2)
    yx1 = np.outer(_gauss_tf(fy, sigma1), _gauss_tf(fx, sigma1)).astype(np.float32)
    yx2 = np.outer(_gauss_tf(fy, sigma2), _gauss_tf(fx, sigma2)).astype(np.float32)
    for k in range(fshape[0]):  # plane by plane: no full-size transfer function in memory
        spec[k] *= np.float32(gz1[k]) * yx1 - np.float32(gz2[k]) * yx2
    out = sfft.irfftn(spec, s=fshape, workers=workers, overwrite_x=True)
    if out.dtype != np.float32:
        out = out.astype(np.float32)
    return out[:shape[0], :shape[1], :shape[2]]


def chunk_planes(shape, halo, max_chunk_voxels=DEFAULT_CHUNK_VOXELS):
    """Number of kept z-planes per chunk so that a padded chunk fits the voxel budget."""
    plane = (shape[1] + 2 * halo) * (shape[2] + 2 * halo)
    return max(1, int(max_chunk_voxels // plane) - 2 * halo)


def dog_volume(source, sigma1, sigma2, sign=1.0, z_range=None, workers=None,
               max_chunk_voxels=DEFAULT_CHUNK_VOXELS, progress=None):
    """DoG of planes ``z_range`` (default: all) of ``source`` (see ``volume.py``), float32.

    Halos use the real neighbouring planes where they exist and mirror padding at the
    volume's faces, so the result does not depend on the chunking (up to the Gaussian
    tail beyond 4 sigma2, about 3e-4 of the signal).
    """
    nz, ny, nx = source.shape
    za, zb = (0, nz) if z_range is None else (max(0, int(z_range[0])), min(nz, int(z_range[1])))
    h = halo_for(sigma2)
    step = chunk_planes(source.shape, h, max_chunk_voxels)
    out = np.empty((zb - za, ny, nx), dtype=np.float32)
    starts = list(range(za, zb, step))
    for n, z0 in enumerate(starts, 1):
        z1 = min(zb, z0 + step)
        a, b = max(0, z0 - h), min(nz, z1 + h)
        slab = source.read(a, b)
        pad = ((h - (z0 - a), h - (b - z1)), (h, h), (h, h))
        padded = np.pad(slab, pad, mode="symmetric")
        del slab
        dog = dog_block(padded, sigma1, sigma2, sign, workers)
        del padded
        out[z0 - za:z1 - za] = dog[h:h + (z1 - z0), h:h + ny, h:h + nx]
        del dog
        if progress is not None:
            progress.update(n, "DoG chunks")
    return out


def dog_reference(volume, sigma1, sigma2, sign=1.0):
    """The plain approach (two spatial Gaussian filters), for tests and benchmarks."""
    from scipy import ndimage
    v = np.asarray(volume, dtype=np.float32)
    d = ndimage.gaussian_filter(v, sigma1, mode="reflect")
    d -= ndimage.gaussian_filter(v, sigma2, mode="reflect")
    if sign < 0:
        np.negative(d, out=d)
    return d
