"""Simulated subtomograms: rotated templates -> CTF -> missing wedge -> wedge noise.

Recipe per subtomogram (disca-method.md section 8):
1. uniform random rotation and a uniform random shift of up to ``max_shift`` voxels per axis,
   template centre of mass at box index ``size // 2`` (the extraction convention);
2. CTF (300 kV, Cs 2.7 mm, 5 um underfocus, 7% amplitude contrast) and missing wedge;
3. Gaussian white noise filtered by the same wedge (the unmeasured region holds neither
   signal nor noise), scaled so var(signal) / var(noise) = SNR, both over the whole box:
   per subtomogram (``snr_mode='particle'``, default) or one noise level for the whole
   data set from the mean signal variance (``snr_mode='dataset'``: big complexes are then
   more visible than small ones, as in real tomograms);
4. normalisation to zero mean and unit variance.
Noise and geometry use separate random streams: the same seed with another SNR gives the
same particles and the same noise pattern at another level.
"""
import json
import os
import time

import mrcfile
import numpy as np

from .. import __version__
from ..errors import EngineError
from ..io.atomic import atomic_path
from ..io.mrc import write_volume
from ..io.star import StarTable, write_star
from ..progress import Progress
from . import geometry, junk, optics
from .templates import class_info, resolve_classes, template

BATCH = 64


def _check_common(snr, tilt, voxel_a):
    if not np.isfinite(snr) or snr <= 0:
        raise EngineError(f"--snr {snr}: the signal-to-noise ratio must be > 0 (e.g. 0.1; "
                          "real binned tomograms are around 0.01-0.1)")
    if not 0 < tilt <= 90:
        raise EngineError(f"--tilt {tilt}: give the maximum tilt angle in degrees, 0 < tilt <= 90 "
                          "(60 means a +-60 degree tilt series; 90 means no missing wedge)")
    if not np.isfinite(voxel_a) or voxel_a <= 0:
        raise EngineError(f"--voxel-A {voxel_a}: the voxel size must be a positive number of A")


def _check_defocus(defocus_um, spread):
    if not np.isfinite(defocus_um) or not np.isfinite(spread) or spread < 0 or defocus_um - spread <= 0:
        raise EngineError(f"--defocus-um {defocus_um:g} with spread {spread:g}: give an underfocus "
                          "> 0 um (e.g. 5) and a spread >= 0 smaller than it")


def _check_fit(names, temps, size, max_shift, voxel_a):
    limit = (size - 1) // 2 + 0.5  # distance from the centre voxel to the nearest face
    for name, t in zip(names, temps):
        need = t.r95 + max_shift
        if need > limit:
            min_size = int(np.ceil(2 * need)) + 1
            min_voxel = voxel_a * need / limit
            raise EngineError(
                f"box of {size} voxels is too small for class '{name}' (95% of its mass lies "
                f"within {t.r95:.1f} voxels of its centre at {voxel_a:g} A/voxel, plus a shift "
                f"of up to {max_shift:g}): use --size >= {min_size}, --voxel-A >= "
                f"{min_voxel:.1f}, a smaller --max-shift, or drop that class")


class _Plan:
    """Everything random about the particles except the noise."""

    def __init__(self, names, n_per_class, size, voxel_a, max_shift, seed, defocus_um,
                 defocus_spread_um, n_junk=0):
        self.names = names
        geo_seed, noise_seed, junk_seed = np.random.SeedSequence(seed).spawn(3)
        rng = np.random.default_rng(geo_seed)
        self.noise_rng = np.random.default_rng(noise_seed)
        self.junk_rng = np.random.default_rng(junk_seed)
        self.voxel_a = voxel_a
        self.junk_label = len(names)   # junk boxes get the label after the structures'
        n = n_per_class * len(names) + n_junk
        self.labels = rng.permutation(np.r_[np.repeat(np.arange(len(names)), n_per_class),
                                            np.full(n_junk, self.junk_label)])
        self.rotations = geometry.random_rotations(rng, n)
        self.shifts = rng.uniform(-max_shift, max_shift, size=(n, 3))  # [z, y, x]
        self.defocus = np.full(n, float(defocus_um))
        if defocus_spread_um:  # drawn last: without a spread the other draws are unchanged
            self.defocus += rng.uniform(-defocus_spread_um, defocus_spread_um, n)
        self.temps = [template(name, voxel_a) for name in names]
        self.size = size
        self.grid = geometry.box_grid(size)

    def render(self, idx):
        out = np.empty((len(idx), self.size, self.size, self.size), np.float32)
        for j, i in enumerate(idx):
            if self.labels[i] == self.junk_label:
                kind = junk.KINDS[int(np.sum(self.labels[:i] == self.junk_label)) % len(junk.KINDS)]
                out[j] = junk.render(kind, self.size, self.voxel_a, self.junk_rng)
                continue
            geometry.place(self.temps[self.labels[i]], self.rotations[i], self.shifts[i],
                           self.size, self.grid, out=out[j])
        return out


def _batches(n, batch=BATCH):
    return [np.arange(s, min(n, s + batch)) for s in range(0, n, batch)]


def _check_generate(snr, tilt, voxel_a, n_per_class, size, max_shift, defocus_um,
                    defocus_spread_um, snr_mode, junk_fraction):
    _check_common(snr, tilt, voxel_a)
    if int(n_per_class) < 1:
        raise EngineError(f"--n-per-class {n_per_class}: need at least 1 subtomogram per class")
    if int(size) < 8:
        raise EngineError(f"--size {size}: boxes smaller than 8 voxels cannot hold a particle")
    if max_shift < 0:
        raise EngineError(f"--max-shift {max_shift}: must be >= 0 voxels")
    _check_defocus(defocus_um, defocus_spread_um)
    if snr_mode not in ("particle", "dataset"):
        raise EngineError(f"snr mode '{snr_mode}': use 'particle' or 'dataset'")
    if not 0 <= junk_fraction <= 0.5:
        raise EngineError(f"--junk-fraction {junk_fraction}: give a fraction between 0 and 0.5 "
                          "(e.g. 0.2: one box in five is junk)")


def _dataset_level(plan, batches, transfer, shape, snr):
    """snr_mode 'dataset': one noise level for all, from the data set's mean signal variance."""
    signal_var = np.empty(len(plan.labels))
    for idx in batches:
        spec = optics.rfftn3(plan.render(idx)) * transfer(idx)
        signal_var[idx] = optics.spectral_variance(spec, shape)
    return np.full(len(plan.labels), signal_var.mean() / snr)


def _junk_noise(want, is_junk, junk_level):
    """Junk boxes get the noise of the particles around them, not their own SNR; returns
    (noise variances, the level carried to a batch of junk only)."""
    if is_junk.any():
        if (~is_junk).any():
            junk_level = np.median(want[~is_junk])
        want = np.where(is_junk, junk_level, want)
    return want, junk_level


def _add_noise(spec, want, noise_unit_var, rng, wedge, shape, with_clean):
    """(normalised noisy volumes, the noise-free signal scaled alike or None) of signal
    spectra ``spec`` with wedge-filtered white noise of variances ``want``."""
    scale = np.sqrt(want / noise_unit_var).astype(np.float32)
    noise = rng.standard_normal((len(want),) + shape, dtype=np.float32)
    nspec = optics.rfftn3(noise) * wedge
    vol = optics.irfftn3(spec + scale[:, None, None, None] * nspec, shape)
    mean = vol.mean(axis=(1, 2, 3), keepdims=True)
    std = vol.std(axis=(1, 2, 3), keepdims=True)
    clean = (optics.irfftn3(spec, shape) - mean) / std if with_clean else None
    return ((vol - mean) / std).astype(np.float32), clean


def generate(classes=5, n_per_class=40, snr=0.1, tilt=60.0, size=24, voxel_A=14.0, seed=0,
             max_shift=2.0, defocus_um=5.0, snr_mode="particle", return_clean=False, sink=None,
             progress=None, defocus_spread_um=0.0, junk_fraction=0.0):
    """Simulate subtomograms in memory (or stream batches to ``sink(indices, data)``).

    Returns a dict: ``data`` (N, s, s, s) float32 normalised (None when ``sink`` is given),
    ``labels`` (N,) 0-based, ``class_names``, ``rotations`` (N, 3, 3) xyz matrices mapping
    template to particle coordinates, ``shifts`` (N, 3) [z, y, x] voxels, ``signal_var`` and
    ``noise_var`` (N,) before normalisation, ``defocus_um`` (N,), ``clean`` (noise-free
    CTF+wedge signal scaled like ``data``) when ``return_clean``. With ``defocus_spread_um``
    each subtomogram's underfocus is uniform in defocus_um +- spread."""
    names = resolve_classes(classes)
    _check_generate(snr, tilt, voxel_A, n_per_class, size, max_shift, defocus_um,
                    defocus_spread_um, snr_mode, junk_fraction)
    size, n_per_class = int(size), int(n_per_class)
    n_junk = int(round(junk_fraction * n_per_class * len(names) / (1 - junk_fraction)))
    plan = _Plan(names, n_per_class, size, voxel_A, max_shift, seed, defocus_um, defocus_spread_um,
                 n_junk)
    _check_fit(names, plan.temps, size, max_shift, voxel_A)

    shape = (size, size, size)
    wedge = optics.wedge_mask(shape, tilt)
    fixed = optics.ctf(shape, voxel_A, defocus_um) * wedge

    def transfer(idx):  # one CTF for all, or one per subtomogram
        if not defocus_spread_um:
            return fixed
        return np.stack([optics.ctf(shape, voxel_A, d) for d in plan.defocus[idx]]) * wedge
    noise_unit_var = optics.filtered_noise_variance(wedge, shape)
    n = len(plan.labels)
    batches = _batches(n)
    signal_var = np.empty(n)
    level = _dataset_level(plan, batches, transfer, shape, snr) if snr_mode == "dataset" else None
    data = None if sink else np.empty((n,) + shape, np.float32)
    clean = np.empty((n,) + shape, np.float32) if return_clean else None
    noise_var = np.empty(n)
    junk_level = None
    for idx in batches:
        spec = optics.rfftn3(plan.render(idx)) * transfer(idx)
        signal_var[idx] = optics.spectral_variance(spec, shape)
        want = level[idx] if level is not None else signal_var[idx] / snr
        want, junk_level = _junk_noise(want, plan.labels[idx] == plan.junk_label, junk_level)
        noise_var[idx] = want
        vol, clean_vol = _add_noise(spec, want, noise_unit_var, plan.noise_rng, wedge, shape,
                                    clean is not None)
        if clean is not None:
            clean[idx] = clean_vol
        if sink:
            sink(idx, vol)
        else:
            data[idx] = vol
        if progress:
            progress.update(int(idx[-1]) + 1)
    return {"data": data, "labels": plan.labels, "class_names": names,
            "rotations": plan.rotations, "shifts": plan.shifts, "signal_var": signal_var,
            "noise_var": noise_var, "defocus_um": plan.defocus, "clean": clean}


def _simulation_info(names, labels, image_names, res, seed, parameters):
    """simulation.json of ``simulate_subtomograms``: parameters, classes, every particle."""
    n = len(labels)
    junk_text = "junk boxes: " + ", ".join(junk.KINDS) + " in turn (simulate/junk.py)"
    info = {
        "engine_version": __version__, "kind": "subtomograms", "seed": seed,
        "parameters": {"classes": names, **parameters},
        "classes": [{"class": i + 1, "name": c,
                     "description": junk_text if c == "junk" else class_info(c)[0],
                     "approx_kDa": None if c == "junk" else class_info(c)[1],
                     "count": int((labels == i).sum())}
                    for i, c in enumerate(names)],
        "conventions": {"rotation": "3x3 matrix in [x, y, z] mapping template to particle "
                                    "coordinates about the template centre of mass",
                        "shift": "[z, y, x] voxels of the centre of mass from box index size//2",
                        "missing_wedge": "tilt axis y, beam z: zeroed where |kz| > tan(tilt)|kx|"},
        "particles": [{"image": image_names[i], "class": int(labels[i]) + 1,
                       "rotation": np.round(res["rotations"][i], 6).tolist(),
                       "shift": np.round(res["shifts"][i], 4).tolist(),
                       "defocus_um": round(float(res["defocus_um"][i]), 4)} for i in range(n)],
    }
    return info


def simulate_subtomograms(outdir, classes=5, n_per_class=40, snr=0.1, tilt=60.0, size=24,
                          voxel_A=14.0, seed=0, stack=False, max_shift=2.0, defocus_um=5.0,
                          snr_mode="particle", defocus_spread_um=0.0, junk_fraction=0.0):
    """Write simulated subtomograms + ``particles.star`` + ``simulation.json`` into
    ``outdir``; return the path of ``particles.star``."""
    names = resolve_classes(classes)
    n = int(n_per_class) * len(names)
    if 0 < junk_fraction < 1:
        n += int(round(junk_fraction * n / (1 - junk_fraction)))
    os.makedirs(outdir, exist_ok=True)
    t0 = time.time()
    progress = Progress("simulate subtomos", total=n)
    if stack:
        image_names = [f"{i + 1}@particles.mrcs" for i in range(n)]
        writer = StackWriter(os.path.join(outdir, "particles.mrcs"), n, int(size), voxel_A)
        sink = writer.write
    else:
        os.makedirs(os.path.join(outdir, "subtomos"), exist_ok=True)
        image_names = [f"subtomos/sub_{i + 1:06d}.mrc" for i in range(n)]

        def sink(idx, vol):
            for j, i in enumerate(idx):
                write_volume(os.path.join(outdir, image_names[i]), vol[j], voxel_A)
    try:
        res = generate(names, n_per_class, snr, tilt, size, voxel_A, seed, max_shift, defocus_um,
                       snr_mode, sink=sink, progress=progress, defocus_spread_um=defocus_spread_um,
                       junk_fraction=junk_fraction)
    finally:
        if stack:
            writer.close()
    labels = res["labels"]
    if junk_fraction:
        names = names + ["junk"]
    table = StarTable({"rlnImageName": image_names,
                       "discaTrueClass": [int(c) + 1 for c in labels],
                       "discaTrueClassName": [names[c] for c in labels]}, name="particles")
    star = os.path.join(outdir, "particles.star")
    write_star(star, table, comment=f"disca-engine {__version__} simulate subtomos: "
                                    f"{len(names)} classes x {n_per_class}, SNR {snr:g}, tilt +-{tilt:g}")
    info = _simulation_info(names, labels, image_names, res, seed, {
        "n_per_class": int(n_per_class), "snr": snr, "snr_mode": snr_mode, "tilt_deg": tilt,
        "size": int(size), "voxel_A": voxel_A, "max_shift_voxels": max_shift, "kv": 300.0,
        "cs_mm": 2.7, "defocus_um": defocus_um, "defocus_spread_um": defocus_spread_um,
        "amplitude_contrast": 0.07, "stack": bool(stack), "junk_fraction": junk_fraction})
    info["seconds"] = round(time.time() - t0, 3)
    with atomic_path(os.path.join(outdir, "simulation.json")) as tmp, open(tmp, "w") as fh:
        json.dump(info, fh, indent=1)
    progress.finish(f"{n} subtomograms in {outdir}")
    return star


class StackWriter:
    """Fill a float32 MRC volume stack batch by batch (memory-mapped), renamed when closed."""

    def __init__(self, path, n, size, voxel_a):
        self.path = path
        self._ctx = atomic_path(path)
        self.tmp = self._ctx.__enter__()
        self.mrc = mrcfile.new_mmap(self.tmp, shape=(n, size, size, size), mrc_mode=2, overwrite=True)
        self.mrc.voxel_size = float(voxel_a)
        self.mrc.header.ispg = 401  # a stack of volumes (4D data)
        self.done = 0
        self.n = n

    def write(self, idx, vol):
        self.mrc.data[idx] = vol
        self.done += len(idx)

    def close(self):
        ok = self.done == self.n
        if ok:
            self.mrc.update_header_stats()
        self.mrc.close()
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(RuntimeError, RuntimeError("incomplete"), None)
