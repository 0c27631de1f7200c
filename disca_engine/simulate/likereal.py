"""Boxes "like the real data": simulated particles through the tilt series of a real RELION 5 /
WarpTools particle set (tests/data/real/empiar10499_ribosomes), processed as its boxes were.

Read from the set's optimisation-set STAR (``source/*_optimisation_set.star``): per tilt
image the projection matrix (``_rlnTomoProjX/Y/Z``), underfocus and astigmatism, CTF scale
factor and pre-exposure; per particle its position and visible frames; and the particle
tilt series themselves (32^3 px at 12 A, CTF-premultiplied and exposure filtered by
WarpTools), from which the noise is measured.

Processing (the README of the set, reproduced: ``reconstruct_real`` makes boxes that
correlate 0.988 (median of 40) with the shipped ones; benchmarks/compare_real_boxes.py): each premultiplied
image is divided by max(E |CTF|, A) (E the exposure filter, A = 0.07 the amplitude contrast)
and multiplied by E, frequencies beyond 15/16 of Nyquist dropped; the CTF is that of the
particle's own underfocus (the image's plus the particle's depth along the beam); inserted
in Fourier space in the tomogram frame, z mirrored (done here by mirroring the geometry);
normalised. Protein comes out bright.

Simulation: a template in a random pose is projected with the same matrices; each image gets
the physical CTF x damage x CTF scale, WarpTools' premultiplication (CTF x E) and noise
whose spectrum is the one measured per tomogram and tilt in the real images (their power
divided by (CTF E)^2 and radially averaged: the real noise, with its low-frequency excess
from ice and crowding and its high-frequency fall-off; at SNR ~0.01 the particles' own
signal is about 1% of it). So the simulated boxes share the real boxes' wedge, noise
spectrum, contrast and normalisation; no neighbours or membranes are added, since the
measured noise already holds the real surroundings (as a stationary spectrum).
"""
import glob
import os

import numpy as np

from ..errors import EngineError
from ..io.mrc import read_volume
from ..io.star import _parse
from . import optics, projection, tiltseries
from .subtomos import _check_fit
from .tiltsubtomos import Plan, margin_voxels, simulate_boxes
from .templates import resolve_classes

SNR = 0.008                 # the real boxes' per-particle SNR, 0.006-0.01 (their README)
MAX_SNR = 0.1               # measured: the shell spectra still match within 11% at 0.1, not at 0.3
MAX_SHIFT = 1.0             # refined coordinates: particles centred within about a voxel
CTF_FLOOR = 0.07            # the divisor's floor: the amplitude contrast
BAND = 15.0 / 16.0          # fraction of Nyquist kept
MIRROR = np.diag([1.0, 1.0, -1.0])   # z -> -z, applied to the geometry


def _vector(text):
    return np.array([float(v) for v in text.strip("[]").split(",")])


def _tables(path):
    with open(path) as fh:
        return {t.name: t for t in _parse(fh.read().splitlines(), path)}


def _pair_value(path, key):
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "_" + key:
                return parts[1]
    raise EngineError(f"{path} has no _{key}: give the folder of a RELION 5 optimisation set")


class RealSet:
    """Geometry, optics and particle tilt series of a real particle set (module docstring)."""

    def __init__(self, folder):
        found = sorted(glob.glob(os.path.join(folder, "source", "*_optimisation_set.star")))
        if not found:
            raise EngineError(f"--real {folder}: no source/*_optimisation_set.star in it: give "
                              "the folder of tests/data/real/empiar10499_ribosomes or one like it")
        src = os.path.dirname(found[0])
        self.folder = folder
        self.tomos = _tables(os.path.join(src, _pair_value(found[0], "rlnTomoTomogramsFile")))
        parts = _tables(os.path.join(src, _pair_value(found[0], "rlnTomoParticlesFile")))
        self.particles = parts["particles"]
        opt = parts["optics"]
        self.voxel_a = float(opt["rlnImagePixelSize"][0])
        self.size = int(opt["rlnImageSize"][0])
        self.source = src
        glob_t = self.tomos["global"]
        self.tomo_size_a = {name: np.array([float(glob_t[f"rlnTomoSize{a}"][i]) for a in "XYZ"])
                            * float(glob_t["rlnTomoTiltSeriesPixelSize"][i])
                            for i, name in enumerate(glob_t["rlnTomoName"])}
        self._noise = {}

    def __len__(self):
        return len(self.particles)

    def row(self, i):
        return {k: self.particles[k][i] for k in self.particles.columns}

    def series(self, i):
        """TiltSeries of particle i's visible frames in the (mirrored) box frame, underfocus at
        the particle, and the frame indices."""
        r = self.row(i)
        t = self.tomos[r["rlnTomoName"]]
        proj = np.array([[_vector(t[c][j])[:3] for c in ("rlnTomoProjX", "rlnTomoProjY", "rlnTomoProjZ")]
                         for j in range(len(t))])
        pos = np.array([float(r[f"rlnCoordinate{a}"]) for a in "XYZ"]) * self.voxel_a
        depth = proj[:, 2, :] @ (pos - self.tomo_size_a[r["rlnTomoName"]] / 2)    # A
        du, dv = t.column("rlnDefocusU", float), t.column("rlnDefocusV", float)
        frames = np.flatnonzero([v == "1" for v in r["rlnTomoVisibleFrames"].strip("[]").split(",")])
        series = tiltseries.TiltSeries(
            proj @ MIRROR, t.column("rlnMicrographPreExposure", float), 0.0,
            ((du + dv) / 2 + depth) / 1e4, (du - dv) / 2e4, t.column("rlnDefocusAngle", float),
            t.column("rlnCtfScalefactor", float))
        return series.take(frames), frames

    def boxes(self):
        """The set's own boxes (its particles.star, beside source/), in that order."""
        if not hasattr(self, "_boxes"):
            table = _tables(os.path.join(self.folder, "particles.star"))["particles"]
            self._boxes = np.stack([read_volume(os.path.join(self.folder, name))
                                    for name in table["rlnImageName"]]).astype(np.float64)
        return self._boxes

    def images(self, i):
        return read_volume(os.path.join(self.source, self.row(i)["rlnImageName"])).astype(np.float64)

    def noise_profiles(self, tomo):
        """(frames, bins) radial noise power of one tomogram's images (|fft2|^2 over (CTF E)^2,
        pooled over its particles), bins of |k| n."""
        if tomo not in self._noise:
            n = self.size
            kbin = np.round(tiltseries.radial_freq(n, self.voxel_a) * n * self.voxel_a).astype(int).ravel()
            nb = kbin.max() + 1
            num, den = {}, {}
            for i in np.flatnonzero(np.array(self.particles["rlnTomoName"]) == tomo):
                series, frames = self.series(i)
                spec = np.abs(np.fft.fft2(self.images(i)[frames])) ** 2
                prem = premultiply_filters(series, n, self.voxel_a) ** 2
                for f, s, p in zip(frames, spec, prem):
                    num[f] = num.get(f, 0) + np.bincount(kbin, s.ravel(), nb)
                    den[f] = den.get(f, 0) + np.bincount(kbin, p.ravel(), nb)
            self._noise[tomo] = {f: num[f] / np.maximum(den[f], 1e-12) for f in num}
        return self._noise[tomo]


def premultiply_filters(series, n, voxel_a):
    """WarpTools' premultiplication of each image: CTF x exposure filter (fft2 grid)."""
    kr = tiltseries.radial_freq(n, voxel_a)
    out = np.empty((len(series), n, n))
    for j in range(len(series)):
        out[j] = optics.ctf_image(n, voxel_a, series.defocus_um[j], series.astigmatism_um[j],
                                  series.astig_angle_deg[j])
        out[j] *= tiltseries.exposure_filter(kr, series.pre_exposure[j], 0.0)
    return out


def correction_filters(series, n, voxel_a):
    """The set's processing of each premultiplied image: E / max(E |CTF|, A), band-limited."""
    kr = tiltseries.radial_freq(n, voxel_a)
    prem = premultiply_filters(series, n, voxel_a)
    out = np.empty_like(prem)
    for j in range(len(series)):
        e = tiltseries.exposure_filter(kr, series.pre_exposure[j], 0.0)
        out[j] = e / np.maximum(np.abs(prem[j]), CTF_FLOOR) * (kr * 2 * voxel_a <= BAND)
    return out


def band_limit(vols):
    """Volumes (..., n, n, n) without the shells from Nyquist on (|k| >= n/2 - 1/2), which
    the set's boxes do not have (measured: their power there is 1e-15 of the rest)."""
    n = vols.shape[-1]
    spec = np.fft.fftn(vols, axes=(-3, -2, -1))
    spec[..., shell_index(n) >= n // 2] = 0
    return np.fft.ifftn(spec, axes=(-3, -2, -1)).real.astype(np.float32)


def reconstruct_real(real, i):
    """Box of real particle i from its own tilt series, processed as the set's README says."""
    series, frames = real.series(i)
    return band_limit(projection.insert(real.images(i)[frames], series.rotations,
                                        correction_filters(series, real.size, real.voxel_a)))


class LikeRealOptics:
    """Signal: physical CTF x damage x CTF scale, then WarpTools' premultiplication; noise:
    the measured spectrum of the same tomogram and frame; processing: ``correction_filters``."""

    def __init__(self, real, match_spectrum=True):
        self.real = real
        if not match_spectrum:
            self.shape_noise = None

    def signal_filter(self, series, m):
        phys = tiltseries.physics_filters(series, m, self.real.voxel_a)
        return phys * premultiply_filters(series, m, self.real.voxel_a)

    def noise_power(self, series, n):
        kb = tiltseries.radial_freq(n, self.real.voxel_a) * n * self.real.voxel_a
        profiles = self.real.noise_profiles(series.tomo)
        prem = premultiply_filters(series, n, self.real.voxel_a) ** 2
        return np.stack([p * np.interp(kb, np.arange(len(profiles[f])), profiles[f])
                         for p, f in zip(prem, series.frames)])

    def correction(self, series, n):
        return correction_filters(series, n, self.real.voxel_a)

    @staticmethod
    def band_limit(vols):
        return band_limit(vols)

    def shape_noise(self, noise, clean, snr):
        """Noise volumes given, shell by shell, the power that makes the boxes' mean radial
        spectrum the real boxes' (the per-image noise alone falls short at the lowest
        frequencies, where the real specimen's 3D structure adds coherently over the tilts):
        gain^2 = ((1 + snr) P_real - snr P_signal) / P_noise, each at unit variance."""
        n = noise.shape[-1]
        shell = shell_index(n)
        target = (1 + snr) * shell_power(self.real.boxes(), shell) - snr * shell_power(clean, shell)
        have = shell_power(noise, shell)
        live = have > 1e-9 * have.max()           # shells the band limit emptied stay empty
        gain = np.where(live, np.sqrt(np.maximum(target, 0.0) / np.where(live, have, 1.0)), 0.0)
        spec = np.fft.fftn(noise, axes=(1, 2, 3))
        spec *= gain[shell]
        return np.fft.ifftn(spec, axes=(1, 2, 3)).real.astype(np.float32)


def shell_index(n):
    """Integer shell (|k| in units of 1/n, rounded) of every fftn voxel of an n^3 box."""
    k = np.fft.fftfreq(n) * n
    return np.round(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2
                            + k[None, None, :] ** 2)).astype(int)


def shell_power(vols, shell):
    """Mean |fftn|^2 per shell of volumes (N, n, n, n), each scaled to unit variance first."""
    vols = np.asarray(vols, np.float64)
    vols = vols - vols.mean(axis=(1, 2, 3), keepdims=True)
    vols = vols / np.maximum(vols.std(axis=(1, 2, 3), keepdims=True), 1e-30)
    power = (np.abs(np.fft.fftn(vols, axes=(1, 2, 3))) ** 2).mean(0)
    return np.bincount(shell.ravel(), power.ravel()) / np.bincount(shell.ravel())


class LikeRealPlan(Plan):
    """Plan whose boxes take, in a seeded random order, the geometry of the real particles."""

    def __init__(self, real, names, n_per_class, seed, max_shift):
        super().__init__(names, n_per_class, 0, real.size, real.voxel_a, seed, max_shift,
                         (1.0, 1.0), 0.0, (0, 0), 0.0, 0.0, names, np.zeros(1))
        self.real = real
        rng = np.random.default_rng([int(seed), 4])
        self.source = np.resize(rng.permutation(len(real)), len(self.labels))
        self.defocus = np.array([real.series(s)[0].defocus_um.mean() for s in self.source])

    def series(self, i, dose_per_tilt=None):
        s = int(self.source[i])
        series, frames = self.real.series(s)
        series.tomo, series.frames = self.real.row(s)["rlnTomoName"], frames
        return series


def generate_like_real(real_dir, classes, n_per_class=40, snr=SNR, seed=0,
                       max_shift=MAX_SHIFT, progress=None, return_clean=False, match_spectrum=True):
    """Simulated boxes of ``classes`` through the real set's tilt series (module docstring);
    the dict of ``generate_tiltseries_subtomograms`` plus ``source_particle`` (index into the
    real set's particles STAR) and ``voxel_A``, ``size``. ``match_spectrum=False`` leaves out
    the 3D shell gain (``LikeRealOptics.shape_noise``): the measured per-image noise alone."""
    names = resolve_classes(classes)
    if not (np.isfinite(snr) and 0 < snr <= MAX_SNR):
        raise EngineError(f"--snr {snr:g}: give an SNR > 0 and <= {MAX_SNR:g} (the real boxes: about "
                          f"{SNR:g}); above it the particle's own power exceeds the real spectrum at "
                          "low frequency and the spectra cannot be matched")
    if int(n_per_class) < 1:
        raise EngineError(f"--n-per-class {n_per_class}: need at least 1 subtomogram per class")
    if not (np.isfinite(max_shift) and max_shift >= 0):
        raise EngineError(f"--max-shift {max_shift}: must be >= 0 voxels")
    real = RealSet(real_dir)
    plan = LikeRealPlan(real, names, int(n_per_class), seed, max_shift)
    _check_fit(names, plan.temps, real.size, max_shift, real.voxel_a)
    margin = margin_voxels(real.voxel_a, float(plan.defocus.max()) + 1.0)
    res = simulate_boxes(plan, LikeRealOptics(real, match_spectrum), snr, "particle", 0.0,
                         margin, progress, return_clean)
    res.update({"labels": plan.labels, "class_names": names, "rotations": plan.rotations,
                "shifts": plan.shifts, "defocus_um": plan.defocus,
                "n_neighbours": np.zeros(len(plan), int), "membrane": np.zeros(len(plan), bool),
                "gold": np.zeros(len(plan), bool), "junk_kind": plan.junk_kind,
                "neighbour_classes": names, "source_particle": plan.source,
                "voxel_A": real.voxel_a, "size": real.size})
    return res
