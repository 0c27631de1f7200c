"""Microscope transfer: CTF, missing wedge, and wedge-shaped noise, on rfft grids.

Geometry (arrays are [z, y, x]; the beam is along z at zero tilt; the tilt axis is y):
a projection at tilt angle a measures the central Fourier plane that contains ky and
the direction (kx, kz) = (cos a, sin a). Tilting from -theta to +theta therefore measures
the points with |kz| <= tan(theta) |kx|; the missing wedge is |kz| > tan(theta) |kx|
(a double wedge around the kz axis, (90 - theta)/90 of the kx-kz angles). The ky axis
(kx = kz = 0) is measured.

CTF (weak-phase object, no envelope by default):
  CTF(k) = -(sqrt(1 - A^2) sin(chi) + A cos(chi)),
  chi(k) = pi lambda df k^2 - pi/2 Cs lambda^3 k^4,
with df > 0 for underfocus (the "defocus -5 um" of the papers). CTF(0) = -A and the
first lobe is negative, so positive density (protein) comes out dark.
"""
import numpy as np
from scipy import fft as sfft


def wavelength_a(kv):
    """Relativistic electron wavelength in A for an acceleration voltage in kV."""
    v = kv * 1e3
    return 12.2643 / np.sqrt(v * (1.0 + 0.978466e-6 * v))


def rfft_freqs(shape, voxel_a):
    """Frequencies (cycles/A) kz, ky, kx broadcastable to the rfftn grid of ``shape``."""
    nz, ny, nx = shape
    kz = sfft.fftfreq(nz, voxel_a)[:, None, None]
    ky = sfft.fftfreq(ny, voxel_a)[None, :, None]
    kx = sfft.rfftfreq(nx, voxel_a)[None, None, :]
    return kz, ky, kx


def wedge_mask(shape, tilt_deg):
    """1 where measured, 0 in the missing wedge (tilt range +-tilt_deg about y)."""
    kz, ky, kx = rfft_freqs(shape, 1.0)
    if tilt_deg >= 90:
        return np.ones(np.broadcast_shapes(kz.shape, ky.shape, kx.shape), np.float32)
    measured = np.abs(kz) <= np.tan(np.deg2rad(tilt_deg)) * np.abs(kx) + 1e-9
    return np.broadcast_to(measured, np.broadcast_shapes(kz.shape, ky.shape, kx.shape)).astype(np.float32)


def ctf(shape, voxel_a, defocus_um=5.0, kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, bfactor=0.0):
    """CTF (float32) on the rfftn grid of ``shape`` (defocus_um > 0 = underfocus)."""
    kz, ky, kx = (k.astype(np.float32) for k in rfft_freqs(shape, voxel_a))
    k2 = (kz ** 2 + ky ** 2) + kx ** 2  # 2D + 1D broadcast, then one 3D array
    h = ctf_of_k2(k2, defocus_um * 1e4, kv, cs_mm, amplitude_contrast)
    if bfactor:
        h *= np.exp(-bfactor * k2 / 4.0)
    return h


def ctf_of_k2(k2, defocus_a, kv=300.0, cs_mm=2.7, amplitude_contrast=0.07):
    """CTF at squared frequencies ``k2`` (float32, 1/A^2) for an underfocus ``defocus_a`` in A
    (a number, or an array broadcastable to ``k2`` for astigmatism).

    Uses sqrt(1 - A^2) sin(chi) + A cos(chi) = sin(chi + asin(A)): one sine per point,
    in float32 with in-place operations (big tomogram grids)."""
    lam = wavelength_a(kv)
    cs = cs_mm * 1e7
    # chi = pi lam df k2 - pi/2 cs lam^3 k2^2 = k2 (c1 - c2 k2)
    c1 = (np.pi * lam * np.asarray(defocus_a, np.float64)).astype(np.float32)
    c2 = np.float32(0.5 * np.pi * cs * lam ** 3)
    h = k2 * np.float32(-c2)
    h += c1
    h *= k2
    h += np.float32(np.arcsin(amplitude_contrast))
    np.sin(h, out=h)
    h *= np.float32(-1.0)
    return h


def image_freqs(shape, voxel_a):
    """Frequencies (cycles/A) kv, ku broadcastable to the fft2 grid of an image of ``shape``
    (nv, nu), or n x n for an int."""
    nv, nu = (shape, shape) if np.isscalar(shape) else shape
    return sfft.fftfreq(nv, voxel_a)[:, None], sfft.fftfreq(nu, voxel_a)[None, :]


def ctf_image(n, voxel_a, defocus_um, astigmatism_um=0.0, astig_angle_deg=0.0, kv=300.0,
              cs_mm=2.7, amplitude_contrast=0.07):
    """2D CTF (float32) on the fft2 grid of an n x n image [v, u] (or of shape n = (nv, nu)).
    Astigmatism: the underfocus
    is defocus + astigmatism along the direction ``astig_angle_deg`` from u (the RELION
    DefocusU axis) and defocus - astigmatism across it."""
    ky, kx = image_freqs(n, voxel_a)
    k2 = (ky ** 2 + kx ** 2).astype(np.float32)
    df = defocus_um * 1e4
    if astigmatism_um:
        theta = np.arctan2(ky, kx) - np.deg2rad(astig_angle_deg)
        df = df + astigmatism_um * 1e4 * np.cos(2 * theta)
    return ctf_of_k2(k2, df, kv, cs_mm, amplitude_contrast)


def rfft_weights(shape):
    """Multiplicity of each rfftn coefficient in the full spectrum (1 or 2)."""
    nx = shape[-1]
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def spectral_variance(spec, shape):
    """Variance over the volume of irfftn(spec, shape) for spectra [..., z, y, x//2+1],
    computed with Parseval (no inverse transform)."""
    n = float(np.prod(shape))
    power = (np.abs(spec) ** 2) * rfft_weights(shape)
    total = power.reshape(power.shape[:-3] + (-1,)).sum(-1)
    dc = np.abs(spec[..., 0, 0, 0]) ** 2
    return (total - dc) / n ** 2


def filtered_noise_variance(mask, shape):
    """Expected variance of unit white noise after multiplying its spectrum by ``mask``."""
    n = float(np.prod(shape))
    m2 = np.broadcast_to(np.abs(mask) ** 2, mask.shape) * rfft_weights(shape)
    return float((m2.sum() - float(np.abs(mask.flat[0]) ** 2)) / n)


def rfftn3(x, workers=1):
    return sfft.rfftn(x, axes=(-3, -2, -1), workers=workers)


def irfftn3(spec, shape, workers=1):
    return sfft.irfftn(spec, s=shape, axes=(-3, -2, -1), workers=workers)
