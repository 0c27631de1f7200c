"""Tilt-series physics: geometry, dose-symmetric exposure, per-tilt CTF, radiation damage and
noise, and the image processing applied before reconstruction.

Conventions. Volumes are [z, y, x]; a tilt image is [v, u]. Each image has a rotation whose
rows are its axes u, v and the beam direction w, written in the volume's (x, y, z) frame; a
point p (x, y, z, from the projection centre) lands on the image at (u, v) = (U.p, V.p). A
single-axis series about y at tilt a has U = (cos a, 0, sin a), V = (0, 1, 0), so the image at
tilt a measures the Fourier plane through ky and (kx, kz) = (cos a, sin a), the convention of
``optics`` (and its missing wedge, |kz| > tan(tilt) |kx|).

Contrast. The recorded image has the physical CTF sign: the first lobe is negative, so protein
(positive contrast against ice) is dark. ``ctf_correction='phaseflip'`` multiplies each image
by sign(CTF), which makes every band positive (|CTF|), so protein is bright, as in WarpTools and
RELION subtomograms (and the real EMPIAR boxes of tests/data/real); ``contrast='dark'``
negates the result (protein dark, as in the idealised simulator and IMOD tomograms).
"""
import numpy as np
from scipy import fft as sfft

from ..errors import EngineError
from . import optics

# Critical exposure N_e(k) = A k^B + C (e/A^2, k in 1/A), measured at 300 kV by Grant &
# Grigorieff (eLife 2015); an amplitude at frequency k falls as exp(-N / (2 N_e(k))).
CRITICAL_A, CRITICAL_B, CRITICAL_C = 0.245, -1.665, 2.81
DOSE_PER_TILT = 3.0          # e/A^2 per image: 41 images give 123 e/A^2, a typical total
TILT_STEP = 3.0              # degrees between images
DOSE_GROUP = 2               # Hagen scheme: 0, +1, +2, -1, -2, +3, +4, ... steps


def tilt_angles(tilt=60.0, step=TILT_STEP):
    """Tilt angles from -tilt to +tilt (degrees) every ``step``, symmetric about 0."""
    if not 0 < tilt <= 80:
        raise EngineError(f"--tilt {tilt:g}: give the largest tilt in degrees, 0 < tilt <= 80 "
                          "(real tilt series stop at 60-70)")
    if not 0 < step <= tilt:
        raise EngineError(f"--tilt-step {step:g}: give the angle between images in degrees, "
                          f"0 < step <= {tilt:g} (e.g. 3)")
    k = int(np.floor(tilt / step + 1e-9))
    return step * np.arange(-k, k + 1, dtype=np.float64)


def check_dose(dose_per_tilt):
    if not (np.isfinite(dose_per_tilt) and 0 < dose_per_tilt <= 20):
        raise EngineError(f"--dose-per-tilt {dose_per_tilt:g}: give the exposure of one image in "
                          "e/A^2, > 0 and <= 20 (typical: 2-4)")


def dose_symmetric_order(angles, group=DOSE_GROUP):
    """Acquisition order (indices into ``angles``) of the dose-symmetric scheme of Hagen et al.
    (2017): the image nearest 0 first, then ``group`` images on the positive side, ``group``
    on the negative side, alternating outwards."""
    angles = np.asarray(angles, float)
    first = int(np.argmin(np.abs(angles)))
    pos = [i for i in np.argsort(angles) if angles[i] > angles[first]]
    neg = [i for i in np.argsort(-angles) if angles[i] < angles[first]]
    order, side = [first], 0
    while pos or neg:
        take = pos if (side == 0 and pos) or not neg else neg
        order += take[:group]
        del take[:group]
        side = 1 - side
    return np.array(order)


def pre_exposures(angles, dose_per_tilt=DOSE_PER_TILT, group=DOSE_GROUP):
    """Exposure (e/A^2) each image's area received before it was taken, in the Hagen order."""
    order = dose_symmetric_order(angles, group)
    pre = np.empty(len(order))
    pre[order] = np.arange(len(order)) * float(dose_per_tilt)
    return pre


def critical_exposure(k):
    """Grant & Grigorieff's critical exposure (e/A^2) at frequency ``k`` (1/A)."""
    return CRITICAL_A * np.maximum(k, 1e-6) ** CRITICAL_B + CRITICAL_C


def exposure_filter(k, pre_exposure, dose):
    """Amplitude left at frequency ``k`` of an image taken after ``pre_exposure`` e/A^2 with
    ``dose`` e/A^2 of its own: exp(-N / 2N_e) averaged over the exposure of that image."""
    two_ne = 2.0 * critical_exposure(k)
    if dose <= 0:
        return np.exp(-pre_exposure / two_ne)
    return two_ne / dose * (np.exp(-pre_exposure / two_ne) - np.exp(-(pre_exposure + dose) / two_ne))


class TiltSeries:
    """Per-image geometry and optics of one tilt series (arrays of length n_images).

    ``rotations`` (n, 3, 3): rows U, V, W (image axes and beam) in the volume's x, y, z frame;
    ``pre_exposure`` and ``dose`` (e/A^2); ``defocus_um`` (underfocus at the projection
    centre), ``astigmatism_um`` and ``astig_angle_deg`` (see ``optics.ctf_image``);
    ``ctf_scale``: amplitude weight of each image's signal (1 unless read from a data set)."""

    def __init__(self, rotations, pre_exposure, dose, defocus_um, astigmatism_um=None,
                 astig_angle_deg=None, ctf_scale=None):
        self.rotations = np.asarray(rotations, float).reshape(-1, 3, 3)
        n = len(self.rotations)
        full = lambda v, d: np.broadcast_to(np.asarray(d if v is None else v, float), (n,)).copy()  # noqa: E731
        self.pre_exposure = full(pre_exposure, 0.0)
        self.dose = full(dose, 0.0)
        self.defocus_um = full(defocus_um, 0.0)
        self.astigmatism_um = full(astigmatism_um, 0.0)
        self.astig_angle_deg = full(astig_angle_deg, 0.0)
        self.ctf_scale = full(ctf_scale, 1.0)

    def __len__(self):
        return len(self.rotations)

    @property
    def path_factor(self):
        """Path length through a flat ice slab (normal z) relative to zero tilt: 1/|W_z|."""
        return 1.0 / np.maximum(np.abs(self.rotations[:, 2, 2]), 1e-3)

    def take(self, keep):
        keep = np.asarray(keep)
        return TiltSeries(self.rotations[keep], self.pre_exposure[keep], self.dose[keep],
                          self.defocus_um[keep], self.astigmatism_um[keep],
                          self.astig_angle_deg[keep], self.ctf_scale[keep])


def single_axis(angles, defocus_um, dose_per_tilt=DOSE_PER_TILT, group=DOSE_GROUP):
    """A tilt series about y at ``angles`` (degrees), dose-symmetric, one underfocus (a number
    or one per image)."""
    a = np.deg2rad(np.asarray(angles, float))
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    rot = np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1),
                    np.stack([-s, z, c], -1)], 1)
    return TiltSeries(rot, pre_exposures(angles, dose_per_tilt, group), dose_per_tilt, defocus_um)


def radial_freq(n, voxel_a):
    """|k| (1/A) on the fft2 grid of an n x n image (or of shape n = (nv, nu))."""
    ky, kx = optics.image_freqs(n, voxel_a)
    return np.sqrt(ky ** 2 + kx ** 2)


def physics_filters(series, n, voxel_a):
    """(n_images, n, n) float32: CTF x radiation damage x ctf_scale of each image on its fft2
    grid (n an int or (nv, nu)): what the microscope does to the projected density."""
    kr = radial_freq(n, voxel_a)
    out = np.empty((len(series),) + kr.shape, np.float32)
    for j in range(len(series)):
        out[j] = optics.ctf_image(n, voxel_a, series.defocus_um[j], series.astigmatism_um[j],
                                  series.astig_angle_deg[j])
        out[j] *= (exposure_filter(kr, series.pre_exposure[j], series.dose[j])
                   * series.ctf_scale[j]).astype(np.float32)
    return out


def correction_filters(series, n, voxel_a, ctf_correction="phaseflip", contrast="bright"):
    """(n_images, n, n) float32 applied to each recorded image before back-projection: the
    phase flip (sign CTF) and exposure weighting (the damage curve once more, so late,
    damaged images count less at high frequency), and the contrast sign."""
    kr = radial_freq(n, voxel_a)
    sign = 1.0 if contrast == "bright" else -1.0
    out = np.empty((len(series),) + kr.shape, np.float32)
    for j in range(len(series)):
        weight = exposure_filter(kr, series.pre_exposure[j], series.dose[j])
        if ctf_correction == "phaseflip":
            c = optics.ctf_image(n, voxel_a, series.defocus_um[j], series.astigmatism_um[j],
                                 series.astig_angle_deg[j])
            weight = weight * np.sign(c)
        else:  # raw contrast: protein dark in the first lobe
            weight = -weight
        out[j] = sign * weight
    return out


def apply_filters(images, filters):
    """Multiply each image's fft2 by its filter (images (m, n, n), filters (m, n, n))."""
    spec = sfft.fft2(images, axes=(-2, -1))
    spec *= filters
    return sfft.ifft2(spec, axes=(-2, -1)).real.astype(np.float32)


def image_noise(rng, power):
    """Gaussian noise images (m, n, n) float32 whose expected |fft2|^2 is ``power`` (m, n, n)
    (white noise of variance s^2 has power n^2 s^2 everywhere)."""
    power = np.asarray(power, np.float64)
    pixels = power.shape[-1] * power.shape[-2]
    white = rng.standard_normal(power.shape, dtype=np.float32)
    spec = sfft.fft2(white, axes=(-2, -1))
    spec *= np.sqrt(power / pixels)   # the fft2 of unit white noise has power nv nu
    return sfft.ifft2(spec, axes=(-2, -1)).real.astype(np.float32)


def white_noise_power(series, n):
    """Per-image noise power (m, n, n) (or (m, nv, nu) for n = (nv, nu)) of white noise whose
    variance grows with the path length through the ice slab (1 at zero tilt, 1/cos(tilt))."""
    nv, nu = (n, n) if np.isscalar(n) else n
    return np.broadcast_to((float(nv * nu) * series.path_factor)[:, None, None], (len(series), nv, nu))
