"""Subtomograms through a simulated tilt series, the realistic path of the simulator.

Per box: a crowded scene (``scene``: the particle, neighbours reaching into the box,
background particles, sometimes a membrane or a gold bead) is projected at every tilt
(``projection.project``); each image gets its CTF at the particle's underfocus and the
radiation damage of its place in the dose-symmetric order (``tiltseries``), then Gaussian
noise whose variance grows with the path through the ice (1/cos tilt); the images are phase
flipped and exposure weighted and inserted in Fourier space (``projection.insert``), and the
box is normalised to zero mean and unit variance.

SNR, as in the idealised path: var(signal) / var(noise) in the box, where the signal is the
central particle alone through the same projection, CTF, damage and reconstruction (the
neighbours, membrane and gold count as neither) and the noise variance is the expected
variance of the reconstructed image noise. ``snr_mode='particle'`` sets it per box,
``'dataset'`` uses one noise level for all (from the mean signal variance).
"""
import numpy as np

from ..errors import EngineError
from . import geometry, junk, projection, tiltseries
from .scene import build_scene, reach_volume
from .subtomos import _check_common, _check_fit
from .templates import CLASSES, TEMPLATE_HALVES, resolve_classes, template

SNR = 0.03
DEFOCUS_UM = (2.5, 5.0)        # per-particle underfocus, uniform in this range
NEIGHBOURS = (0, 3)            # neighbours reaching each box, uniform integer in this range
MEMBRANE_FRACTION = 0.2
GOLD_FRACTION = 0.02


def neighbour_pool(names, spec=None):
    """Templates neighbours are drawn from: ``spec`` if given; otherwise the half of
    TEMPLATE_HALVES holding all of ``names`` (so tuning sets never show report structures,
    and the other way round), or all built-in templates if the names span both halves or
    include a user file. The set's own classes are part of the pool."""
    if spec is not None:
        return resolve_classes(spec)
    for half in TEMPLATE_HALVES.values():
        if all(n in half for n in names):
            return list(half)
    return list(CLASSES)


def _range(value, flag, integer=False, example="0,3"):
    """(lo, hi) from one number or a pair: finite, >= 0, lo <= hi (whole numbers if asked)."""
    lo, hi = (value, value) if np.isscalar(value) else tuple(value)
    cast = int if integer else float
    whole = not integer or (lo == int(lo) and hi == int(hi))
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi and whole):
        kind = "whole numbers" if integer else "numbers"
        text = ",".join(f"{v:g}" for v in np.atleast_1d(value))
        raise EngineError(f"{flag} {text}: give one value or a range LO,HI of {kind} >= 0 with "
                          f"LO <= HI (e.g. {example})")
    return cast(lo), cast(hi)


def _check_fraction(value, flag, top=1.0):
    if not (np.isfinite(value) and 0 <= value <= top):
        raise EngineError(f"{flag} {value:g}: give a fraction of the boxes between 0 and {top:g}")


def check_processing(ctf_correction, contrast):
    if ctf_correction not in ("phaseflip", "none"):
        raise EngineError(f"--ctf-correction {ctf_correction}: use 'phaseflip' (as WarpTools and "
                          "RELION) or 'none' (raw CTF, protein dark in the first lobe)")
    if contrast not in ("bright", "dark"):
        raise EngineError(f"--contrast {contrast}: use 'bright' (protein white, as WarpTools and "
                          "RELION subtomograms) or 'dark' (protein black, as raw tomograms)")


class GenericOptics:
    """What happens to each image between specimen and back-projection: CTF and damage on the
    signal, white noise growing with 1/cos(tilt), phase flip and exposure weighting."""

    def __init__(self, voxel_a, ctf_correction="phaseflip", contrast="bright"):
        self.voxel_a = voxel_a
        self.ctf_correction = ctf_correction
        self.contrast = contrast

    def signal_filter(self, series, m):
        return tiltseries.physics_filters(series, m, self.voxel_a)

    def noise_power(self, series, n):
        return tiltseries.white_noise_power(series, n)

    def correction(self, series, n):
        return tiltseries.correction_filters(series, n, self.voxel_a, self.ctf_correction,
                                             self.contrast)


def margin_voxels(voxel_a, defocus_um):
    """Image margin per side for the CTF: its point spread reaches lambda df k_max (A)."""
    from .optics import wavelength_a
    spread = wavelength_a(300.0) * defocus_um * 1e4 / (2 * voxel_a)
    return int(np.ceil(spread / voxel_a)) + 2


def render_box(box, temps, optics, size, margin, noise_rng):
    """Signal, clutter and unit-noise volumes (3, n, n, n) of one planned box, and the
    expected variance of its noise volume. ``box``: dict with 'series', 'scene' and
    'central' ((template index, rotation, shift) or None)."""
    series, scene = box["series"], box["scene"]
    m = size + 2 * margin
    k = len(series)
    central = np.zeros((k, m, m), np.float32)
    if box["central"] is not None:
        i, rot, shift = box["central"]
        t = temps[i]
        side = 2 * int(np.ceil(t.rfull)) + 5
        vol = geometry.place(t, rot, np.zeros(3), side)
        central = projection.project(vol, series.rotations, (m, m), side // 2 - np.asarray(shift))
    clutter = projection.project(scene.render(temps), series.rotations, (m, m))
    phys = optics.signal_filter(series, m)
    images = tiltseries.apply_filters(np.concatenate([central, clutter]), np.concatenate([phys, phys]))
    crop = slice(margin, margin + size)
    images = images[:, crop, crop]
    power = optics.noise_power(series, size)
    noise = tiltseries.image_noise(noise_rng, power)
    vols, noise_var = projection.insert(np.stack([images[:k], images[k:], noise]), series.rotations,
                                        optics.correction(series, size), power)
    if hasattr(optics, "band_limit"):
        vols = optics.band_limit(vols)
    return vols, noise_var


class Plan:
    """Everything random about the boxes except the image noise: classes, poses, underfocus,
    which boxes get neighbours, a membrane or gold; each box's scene from its own stream."""

    def __init__(self, names, n_per_class, n_junk, size, voxel_a, seed, max_shift, defocus,
                 defocus_spread, neighbours, membrane_fraction, gold_fraction, pool, tilts):
        rng = np.random.default_rng([int(seed), 1])
        self.seed, self.size, self.voxel_a, self.names = int(seed), size, voxel_a, names
        self.junk_label = len(names)
        n = n_per_class * len(names) + n_junk
        self.labels = rng.permutation(np.r_[np.repeat(np.arange(len(names)), n_per_class),
                                            np.full(n_junk, self.junk_label)])
        self.rotations = geometry.random_rotations(rng, n)
        self.shifts = rng.uniform(-max_shift, max_shift, size=(n, 3))
        self.defocus = rng.uniform(defocus[0], defocus[1], n)
        self.defocus_offsets = rng.uniform(-defocus_spread, defocus_spread, (n, len(tilts)))
        self.n_reaching = rng.integers(neighbours[0], neighbours[1] + 1, n)
        real = np.flatnonzero(self.labels != self.junk_label)
        self.membrane = np.zeros(n, bool)
        self.membrane[rng.permutation(real)[:int(round(membrane_fraction * len(real)))]] = True
        self.gold = np.zeros(n, bool)
        self.gold[rng.permutation(real)[:int(round(gold_fraction * len(real)))]] = True
        self.junk_kind = np.array([None] * n, dtype=object)
        is_junk = np.flatnonzero(self.labels == self.junk_label)
        self.junk_kind[is_junk] = [junk.KINDS[j % len(junk.KINDS)] for j in range(len(is_junk))]
        self.membrane[self.junk_kind == "membrane"] = True
        self.gold[self.junk_kind == "gold"] = True
        self.tilts = tilts
        self.temps = [template(c, voxel_a) for c in names]
        self.pool_names = [c for c in pool if c not in names]
        self.temps += [template(c, voxel_a) for c in self.pool_names]
        self.pool = [(names + self.pool_names).index(c) for c in pool]
        mean_reach = 0.5 * (neighbours[0] + neighbours[1])
        r95 = np.mean([self.temps[j].r95 for j in self.pool])
        self.density = mean_reach / reach_volume(size, r95)

    def __len__(self):
        return len(self.labels)

    def series(self, i, dose_per_tilt):
        return tiltseries.single_axis(self.tilts, self.defocus[i] + self.defocus_offsets[i],
                                      dose_per_tilt)

    def box(self, i, dose_per_tilt):
        rng = np.random.default_rng([self.seed, 2, int(i)])
        lab = self.labels[i]
        central = None if lab == self.junk_label else (int(lab), self.rotations[i], self.shifts[i])
        scene = build_scene(rng, self.size, self.voxel_a, self.temps, central,
                            int(self.n_reaching[i]), self.pool, self.density,
                            bool(self.membrane[i]), bool(self.gold[i]), self.junk_kind[i])
        return {"series": self.series(i, dose_per_tilt), "scene": scene, "central": central}


def noise_levels(signal_var, labels, junk_label, snr, snr_mode):
    """Noise variance per box: signal_var / snr per box ('particle') or of the mean signal
    ('dataset'); junk boxes get the median level of the particle boxes."""
    real = labels != junk_label
    if snr_mode == "dataset":
        level = np.full(len(labels), signal_var[real].mean() / snr if real.any() else 1.0)
    else:
        level = signal_var / snr
    if (~real).any():
        level[~real] = np.median(level[real]) if real.any() else 1.0
    return level


def simulate_boxes(plan, optics, snr, snr_mode, dose_per_tilt, margin, progress=None,
                   return_clean=False):
    """Run every box of ``plan`` through ``optics``: dict with normalised ``data`` (N, n, n, n)
    float32, per-box ``signal_var``, ``noise_var`` (before normalisation), ``n_background``,
    the scenes' membranes and gold, and ``clean`` (noise-free, scaled like data) if asked."""
    n, size = len(plan), plan.size
    if progress is not None and progress.total is None:
        progress.total = n
    clean = np.empty((n,) + (size,) * 3, np.float32)
    noise = np.empty_like(clean)
    signal_var, unit_var, n_bg, scenes = np.empty(n), np.empty(n), np.empty(n, int), []
    for i in range(n):
        box = plan.box(i, dose_per_tilt)
        vols, unit_var[i] = render_box(box, plan.temps, optics, size, margin,
                                       np.random.default_rng([plan.seed, 3, i]))
        signal_var[i] = vols[0].var()
        clean[i] = vols[0] + vols[1]
        noise[i] = vols[2]
        n_bg[i] = box["scene"].n_background
        scenes.append(box["scene"])
        if progress:
            progress.update(i + 1)
    if getattr(optics, "shape_noise", None):   # a measured 3D noise spectrum to match
        noise = optics.shape_noise(noise, clean, snr)
        unit_var = noise.var(axis=(1, 2, 3)).astype(np.float64)
    level = noise_levels(signal_var, plan.labels, plan.junk_label, snr, snr_mode)
    scale = np.sqrt(level / unit_var).astype(np.float32)
    data = clean + scale[:, None, None, None] * noise
    del noise
    mean = data.mean(axis=(1, 2, 3), keepdims=True)
    std = data.std(axis=(1, 2, 3), keepdims=True)
    data = ((data - mean) / std).astype(np.float32)
    out = {"data": data, "signal_var": signal_var, "noise_var": level, "n_background": n_bg,
           "scenes": scenes}
    out["clean"] = ((clean - mean) / std).astype(np.float32) if return_clean else None
    return out


def check_tiltseries_args(names, n_per_class, snr, tilt, tilt_step, size, voxel_A, max_shift,
                          defocus_um, defocus_spread_um, dose_per_tilt, neighbours,
                          membrane_fraction, gold_fraction, junk_fraction, snr_mode,
                          ctf_correction, contrast):
    """Every argument checked before anything is computed or written; returns
    (tilt angles, defocus range, neighbours range)."""
    _check_common(snr, 90.0, voxel_A)
    angles = tiltseries.tilt_angles(tilt, tilt_step)
    if int(n_per_class) < 1:
        raise EngineError(f"--n-per-class {n_per_class}: need at least 1 subtomogram per class")
    if int(size) < 8:
        raise EngineError(f"--size {size}: boxes smaller than 8 voxels cannot hold a particle")
    if not (np.isfinite(max_shift) and max_shift >= 0):
        raise EngineError(f"--max-shift {max_shift}: must be >= 0 voxels")
    defocus = _range(defocus_um, "--defocus-um", example="2.5,5")
    if defocus[0] <= 0:
        raise EngineError(f"--defocus-um {defocus[0]:g},{defocus[1]:g}: the underfocus must be "
                          "> 0 um (e.g. 2.5,5)")
    if not (np.isfinite(defocus_spread_um) and 0 <= defocus_spread_um < defocus[0]):
        raise EngineError(f"--defocus-spread-um {defocus_spread_um:g}: give a per-image spread "
                          f">= 0 um smaller than the lowest underfocus ({defocus[0]:g})")
    tiltseries.check_dose(dose_per_tilt)
    reach = _range(neighbours, "--neighbours", integer=True)
    _check_fraction(membrane_fraction, "--membrane-fraction")
    _check_fraction(gold_fraction, "--gold-fraction")
    _check_fraction(junk_fraction, "--junk-fraction", 0.5)
    if snr_mode not in ("particle", "dataset"):
        raise EngineError(f"--snr-mode {snr_mode}: use 'particle' or 'dataset'")
    check_processing(ctf_correction, contrast)
    return angles, defocus, reach


def generate_tiltseries_subtomograms(
        classes=5, n_per_class=40, snr=SNR, tilt=60.0, tilt_step=tiltseries.TILT_STEP, defocus_um=DEFOCUS_UM,
        neighbours=NEIGHBOURS, membrane_fraction=MEMBRANE_FRACTION, gold_fraction=GOLD_FRACTION,
        junk_fraction=0.0, size=24, voxel_A=14.0, seed=0, max_shift=2.0, defocus_spread_um=0.0,
        dose_per_tilt=tiltseries.DOSE_PER_TILT, snr_mode="particle", ctf_correction="phaseflip",
        contrast="bright", neighbour_classes=None, progress=None, return_clean=False):
    """Simulate subtomograms through a tilt series in memory (module docstring). Returns a dict:
    ``data`` (N, s, s, s) float32 normalised, ``labels`` (0-based; junk last), ``class_names``,
    ``rotations``, ``shifts``, ``defocus_um`` (N,), ``n_neighbours`` (reaching the box),
    ``membrane``, ``gold`` (bool per box), ``junk_kind``, ``signal_var``, ``noise_var``,
    ``n_background``, ``neighbour_classes``, ``scenes`` and ``clean`` when asked."""
    names = resolve_classes(classes)
    angles, defocus, reach = check_tiltseries_args(
        names, n_per_class, snr, tilt, tilt_step, size, voxel_A, max_shift, defocus_um,
        defocus_spread_um, dose_per_tilt, neighbours, membrane_fraction, gold_fraction,
        junk_fraction, snr_mode, ctf_correction, contrast)
    size, n_per_class = int(size), int(n_per_class)
    pool = neighbour_pool(names, neighbour_classes)
    n_junk = int(round(junk_fraction * n_per_class * len(names) / (1 - junk_fraction)))
    plan = Plan(names, n_per_class, n_junk, size, voxel_A, seed, max_shift, defocus,
                defocus_spread_um, reach, membrane_fraction, gold_fraction, pool, angles)
    _check_fit(names, plan.temps[:len(names)], size, max_shift, voxel_A)
    optics = GenericOptics(voxel_A, ctf_correction, contrast)
    margin = margin_voxels(voxel_A, defocus[1] + defocus_spread_um)
    res = simulate_boxes(plan, optics, snr, snr_mode, dose_per_tilt, margin, progress, return_clean)
    res.update({"labels": plan.labels, "class_names": names, "rotations": plan.rotations,
                "shifts": plan.shifts, "defocus_um": plan.defocus,
                "n_neighbours": np.array([sc.n_reaching for sc in res["scenes"]]),
                "membrane": plan.membrane, "gold": plan.gold, "junk_kind": plan.junk_kind,
                "neighbour_classes": pool, "tilt_angles": angles})
    return res
