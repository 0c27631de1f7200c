"""Tomograms reconstructed from a simulated tilt series (``simulate tomograms --reconstruction
wbp``): the specimen (particles and distractors laid out by ``tomograms``) is projected at
every tilt about y, each image gets its CTF, the radiation damage of its place in the
dose-symmetric order and white noise growing with 1/cos(tilt) (``tiltseries``), is phase
flipped and exposure weighted, ramp filtered and back-projected in real space
(``projection.backproject``). The field of view is the tomogram's x-y extent, so at high tilt
the rays leave the volume through its sides, as in a real series.

SNR as for the Fourier tomograms: the mean variance of the reconstructed noise-free particle
signal (distractors excluded) in ``snr_box`` cubes at the particles, over the variance of the
reconstructed noise (measured on a slab of planes through the middle).
"""
import numpy as np

from . import projection, tiltseries
from .tiltsubtomos import margin_voxels
from .tomo_parts import cube_variance, distractor_volume, layout_result, reference_signal_var

NOISE_PLANES = 8      # z planes reconstructed to measure the noise variance


def _filtered(images, filters_of, margin):
    """Images filtered in Fourier space on a grid padded by ``margin`` (mirrored edges), so
    the filters' point spread does not wrap around."""
    pad = ((0, 0), (margin, margin), (margin, margin))
    big = np.pad(images, pad, mode="reflect")
    out = tiltseries.apply_filters(big, filters_of(big.shape[1:]))
    return out[:, margin:margin + images.shape[1], margin:margin + images.shape[2]]


class _Series:
    """A tomogram's tilt series and the filters of its images."""

    def __init__(self, angles, defocus_um, dose_per_tilt, voxel_a, ctf_correction, contrast):
        self.series = tiltseries.single_axis(angles, defocus_um, dose_per_tilt)
        self.voxel_a = voxel_a
        self.margin = margin_voxels(voxel_a, defocus_um)
        self.ctf_correction, self.contrast = ctf_correction, contrast

    def record(self, volume, image_shape):
        """Noise-free recorded images of ``volume``: projections x CTF x damage."""
        images = projection.project(volume, self.series.rotations, image_shape)
        return _filtered(images, lambda s: tiltseries.physics_filters(self.series, s, self.voxel_a),
                         self.margin)

    def correct(self, images):
        """Phase flip, exposure weighting, contrast, then the ramp filter."""
        out = _filtered(images, lambda s: tiltseries.correction_filters(
            self.series, s, self.voxel_a, self.ctf_correction, self.contrast), self.margin)
        return projection.ramp_filter(out)

    def backproject(self, images, shape, planes=None):
        """Full volume, or ``planes`` z planes through its middle."""
        if planes is None:
            return projection.backproject(images, self.series.rotations, shape)
        z0 = shape[0] // 2 - planes // 2
        centre = (shape[0] // 2 - z0, shape[1] // 2, shape[2] // 2)
        return projection.backproject(images, self.series.rotations, (planes,) + tuple(shape[1:]), centre)


def wbp_tomogram(particles, distractors, centres, voxel_a, tilt, tilt_step, dose_per_tilt,
                 defocus_um, snr, snr_box, noise_rng, reference_signal_var=None,
                 ctf_correction="phaseflip", contrast="dark", return_clean=False, progress=None):
    """Reconstruct the specimen ``particles`` + ``distractors`` (volumes [z, y, x]) from a
    simulated tilt series. Returns (normalised volume, signal_var, noise_var, clean or None,
    tilt angles); ``reference_signal_var`` sets the noise level when there are no particles."""
    shape = particles.shape
    ts = _Series(tiltseries.tilt_angles(tilt, tilt_step), defocus_um, dose_per_tilt, voxel_a,
                 ctf_correction, contrast)
    step = (lambda m: progress.log(m)) if progress else (lambda m: None)
    img_p = ts.correct(ts.record(particles, shape[1:]))
    step(f"particles projected at {len(ts.series)} tilts")
    rec_p = ts.backproject(img_p, shape)
    step("particles back-projected")
    signal_var = cube_variance(rec_p, centres, int(snr_box)) if len(centres) else reference_signal_var
    noise = ts.correct(tiltseries.image_noise(noise_rng, tiltseries.white_noise_power(ts.series, shape[1:])))
    unit_var = float(ts.backproject(noise, shape, min(NOISE_PLANES, shape[0])).var())
    noise_var = signal_var / snr
    noise *= np.float32(np.sqrt(noise_var / unit_var))
    img_d = ts.correct(ts.record(distractors, shape[1:])) if distractors is not None else 0.0
    step("distractors and noise projected")
    vol = rec_p + ts.backproject(img_d + noise, shape)
    step("reconstructed")
    clean = None
    if return_clean:
        clean = rec_p + (ts.backproject(img_d, shape) if distractors is not None else 0.0)
    mean, std = float(vol.mean()), float(vol.std())
    vol = ((vol - mean) / std).astype(np.float32)
    if clean is not None:
        clean = ((clean - mean) / std).astype(np.float32)
    return vol, float(signal_var), float(noise_var), clean, ts.series


def generate_wbp(layout, temps, names, shape, voxel_a, snr, tilt, tilt_step, dose_per_tilt,
                 defocus_um, snr_box, noise_rng, distractors, return_clean, progress=None):
    """``generate_tomogram``'s result for ``reconstruction='wbp'`` from its layout."""
    from .specimen import paste
    tiltseries.tilt_angles(tilt, tilt_step)        # the angles' errors before any work
    tiltseries.check_dose(dose_per_tilt)
    particles = np.zeros(shape, np.float32)
    for lab, rot, c in zip(layout.labels, layout.rotations, layout.centres):
        paste(particles, temps[lab], rot, c)
    ref = None if len(layout.centres) else reference_signal_var(temps, int(snr_box), voxel_a,
                                                                 defocus_um, tilt)
    dist = distractor_volume(shape, layout, voxel_a) if distractors else None
    vol, signal_var, noise_var, clean, series = wbp_tomogram(
        particles, dist, layout.centres, voxel_a, tilt, tilt_step, dose_per_tilt, defocus_um,
        snr, snr_box, noise_rng, ref, return_clean=return_clean, progress=progress)
    out = layout_result(layout, names, vol, signal_var, noise_var, clean)
    out["tilt_angles"] = np.rad2deg(np.arctan2(series.rotations[:, 0, 2], series.rotations[:, 0, 0])).tolist()
    return out
