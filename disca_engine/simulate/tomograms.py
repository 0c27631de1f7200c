"""Simulated tomograms: templates pasted in a slab + distractors -> CTF, wedge, noise.

- Particles: ``n_particles`` per tomogram, classes in equal shares (shuffled), uniform
  random rotations, continuous random centres, no two closer than the sum of their outer
  radii + 1 voxel, all at least their outer radius from every face (so a box centred on a
  truth coordinate is inside the volume as long as the box is not larger than the particle).
- Distractors (``distractors=True``, default): gold fiducials (10 nm beads, ~40x the
  contrast of protein) and one vesicle membrane (lipid bilayer, 4 nm between head groups);
  particles keep clear of them. They are what DoG over-picks in real data.
- The clean volume is zero-padded (``PAD`` voxels per side) before the FFT so the wedge
  streaks and CTF ringing do not wrap around; CTF and wedge as in ``optics``; noise is
  white noise filtered by the wedge (stationary), added in Fourier space.
- SNR: var(signal) / var(noise) where var(signal) is the mean, over particles, of the
  variance of the noise-free filtered PARTICLE signal (distractors excluded) in a cube of
  ``snr_box`` voxels (default 24) centred on each particle. So a 24^3 box extracted at a
  truth coordinate has about the SNR of ``simulate subtomos`` at the same value.
- The tomogram is normalised to zero mean, unit variance and written as float32.
"""
import json
import os
import time

import numpy as np

from .. import __version__
from ..errors import EngineError
from ..io.atomic import atomic_path
from ..io.mrc import write_volume
from ..io.star import StarTable, write_star
from ..progress import Progress
from . import geometry, optics, tiltseries
from .specimen import GOLD_RADIUS_A, HEAD_OFFSET_A, HEAD_SIGMA_A, paste
from .subtomos import _check_common, _check_defocus
from .templates import class_info, resolve_classes, template
from .tomo_parts import (PAD, crop, ctf_wedge, cube_variance, distractor_volume, layout_result,
                         padded_shape, reference_signal_var)

RECONSTRUCTIONS = ("fourier", "wbp")


def _parse_shape(shape):
    if isinstance(shape, str):
        try:
            shape = tuple(int(s) for s in shape.replace("x", ",").split(","))
        except ValueError:
            raise EngineError(f"--shape {shape}: give three integers z,y,x, e.g. 96,256,256")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise EngineError(f"--shape {shape}: need three sizes z,y,x of at least 8 voxels each")
    return shape


class _Layout:
    """Positions of particles and distractors in one tomogram (voxels, [z, y, x])."""

    def __init__(self, rng, shape, temps, n_particles, distractors, voxel_a, slab=None):
        self.shape = np.array(shape)
        self.voxel_a = voxel_a
        # z range of the specimen layer (continuous voxel coordinates)
        nz = shape[0]
        t = nz if slab is None else min(float(slab), nz)
        self.zlim = ((nz - 1) / 2 - (t - 1) / 2, (nz - 1) / 2 + (t - 1) / 2)
        n_cls = len(temps)
        self.labels = rng.permutation(np.arange(n_particles) % n_cls)
        self.rotations = geometry.random_rotations(rng, n_particles)
        self.gold, self.vesicle = [], None
        self.obstacles = []  # (centre, radius) spheres particles must avoid
        if distractors:
            self._place_vesicle(rng, voxel_a)
            gold_r = GOLD_RADIUS_A / voxel_a
            for _ in range(2):
                c = self._free_point(rng, gold_r + 1, [])
                if c is not None:
                    self.gold.append(c)
                    self.obstacles.append((c, gold_r))
        radii = np.array([temps[c].rmax for c in self.labels])
        order = np.argsort(-radii, kind="stable")  # big ones first: easier packing
        self.centres = np.zeros((n_particles, 3))
        placed_c, placed_r = [], []
        for i in order:
            c = self._free_point(rng, radii[i], list(zip(placed_c, placed_r)))
            if c is None:
                raise EngineError(
                    f"cannot fit {n_particles} particles without overlap in a {tuple(shape)} "
                    f"tomogram (placed {len(placed_c)}): lower --n-particles, enlarge --shape "
                    "or --slab, or use --no-distractors")
            self.centres[i] = c
            placed_c.append(c)
            placed_r.append(radii[i])

    def _place_vesicle(self, rng, voxel_a):
        nz, ny, nx = self.shape
        radius = rng.uniform(0.25, 0.4) * min(ny, nx)
        centre = np.array([nz / 2, rng.uniform(0, ny), rng.uniform(0, nx)])
        self.vesicle = (centre, radius)

    def _clear_of_vesicle(self, c, r):
        """Which candidate centres ``c`` (m, 3) keep a particle of radius ``r`` off the membrane."""
        if self.vesicle is None:
            return np.ones(len(c), bool)
        centre, radius = self.vesicle
        half = (HEAD_OFFSET_A + 2 * HEAD_SIGMA_A) / self.voxel_a
        return np.abs(np.linalg.norm(c - centre, axis=1) - radius) > r + half + 1

    def _free_point(self, rng, r, others, tries=4096, batch=256):
        """A random centre at least ``r`` from the faces and clear of ``others`` and the
        obstacles (candidates are drawn and tested in batches), or None."""
        lo = np.array([self.zlim[0] + r, r, r])
        hi = np.array([self.zlim[1] - r, self.shape[1] - 1 - r, self.shape[2] - 1 - r])
        if np.any(hi < lo):
            return None
        both = others + self.obstacles
        oc = np.array([o[0] for o in both]).reshape(-1, 3)
        orad = np.array([o[1] for o in both])
        for _ in range(tries // batch):
            cand = rng.uniform(lo, hi, size=(batch, 3))
            ok = self._clear_of_vesicle(cand, r)
            if oc.size:
                d2 = ((cand[:, None, :] - oc[None]) ** 2).sum(-1)
                ok &= np.all(d2 >= (orad + r + 1)[None] ** 2, axis=1)
            hits = np.flatnonzero(ok)
            if hits.size:
                return cand[hits[0]]
        return None


def generate_tomogram(shape=(96, 256, 256), voxel_A=14.0, classes=5, n_particles=60, snr=0.05,
                      tilt=60.0, seed=0, distractors=True, defocus_um=5.0, snr_box=24,
                      slab=None, return_clean=False, reconstruction="fourier",
                      tilt_step=tiltseries.TILT_STEP, dose_per_tilt=tiltseries.DOSE_PER_TILT,
                      progress=None):
    """One tomogram in memory: dict with ``volume`` (normalised float32 [z, y, x]),
    ``centres`` (n, 3) [z, y, x] voxels, ``labels`` (0-based), ``class_names``,
    ``rotations``, ``gold`` and ``vesicle`` positions, ``signal_var``, ``noise_var``, and
    ``clean`` (noise-free particles + distractors, same scaling) when asked. ``slab``:
    thickness in voxels of the specimen layer (centred in z) that holds the particles and
    gold beads; default the whole volume. ``simulate_tomograms`` makes tomogram t with
    ``seed=[seed, t]``. ``reconstruction='wbp'``: through a tilt series every ``tilt_step``
    degrees instead of the Fourier-space CTF and wedge (``tomo_wbp``; ``progress`` gets its
    stages)."""
    names = resolve_classes(classes)
    _check_common(snr, tilt, voxel_A)
    shape = _parse_shape(shape)
    if int(n_particles) < 0:
        raise EngineError(f"--n-particles {n_particles}: must be >= 0")
    _check_defocus(defocus_um, 0.0)
    if int(snr_box) < 4:
        raise EngineError(f"--snr-box {snr_box}: use the extraction box size (e.g. 24)")
    temps = [template(c, voxel_A) for c in names]
    geo_rng, noise_rng = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
    if slab is not None and not 8 <= float(slab):
        raise EngineError(f"--slab {slab}: give the specimen thickness in voxels (>= 8)")
    if reconstruction not in RECONSTRUCTIONS:
        raise EngineError(f"--reconstruction {reconstruction}: use 'fourier' (CTF and wedge "
                          "in Fourier space) or 'wbp' (through a simulated tilt series)")
    layout = _Layout(geo_rng, shape, temps, int(n_particles), distractors, voxel_A, slab)
    if reconstruction == "wbp":
        from .tomo_wbp import generate_wbp
        return generate_wbp(layout, temps, names, shape, voxel_A, snr, tilt, tilt_step,
                            dose_per_tilt, defocus_um, snr_box, noise_rng, distractors, return_clean,
                            progress)
    vol, signal_var, noise_var, clean = _fourier_tomogram(
        layout, temps, shape, voxel_A, snr, tilt, defocus_um, snr_box, noise_rng, distractors,
        return_clean)
    return layout_result(layout, names, vol, signal_var, noise_var, clean)


def _fourier_tomogram(layout, temps, shape, voxel_A, snr, tilt, defocus_um, snr_box, noise_rng,
                      distractors, return_clean):
    """CTF and wedge in Fourier space: (normalised volume, signal_var, noise_var, clean)."""
    pad = (PAD, PAD, PAD)
    pshape = padded_shape(shape, pad)
    big = np.zeros(pshape, np.float32)
    inner = big[tuple(slice(p, p + n) for p, n in zip(pad, shape))]  # a view
    for lab, rot, c in zip(layout.labels, layout.rotations, layout.centres):
        paste(inner, temps[lab], rot, c)
    transfer = ctf_wedge(pshape, voxel_A, defocus_um, tilt)
    spec = optics.rfftn3(big)
    # noise level from the particles alone (distractors excluded)
    if len(layout.centres):
        sig_p = crop(optics.irfftn3(spec * transfer, pshape), pad, shape)
        signal_var = cube_variance(sig_p, layout.centres, int(snr_box))
        del sig_p
    else:
        signal_var = reference_signal_var(temps, int(snr_box), voxel_A, defocus_um, tilt)
    if distractors:
        inner[...] = distractor_volume(shape, layout, voxel_A)
        spec += optics.rfftn3(big)
    del big, inner
    spec *= transfer
    clean = crop(optics.irfftn3(spec, pshape), pad, shape) if return_clean else None

    # white noise on the padded grid filtered by the wedge: stationary, so its variance in
    # the cropped region is that of the whole grid
    wedge = optics.wedge_mask(pshape, tilt)
    unit_var = optics.filtered_noise_variance(wedge, pshape)
    noise_var = signal_var / snr
    nspec = optics.rfftn3(noise_rng.standard_normal(pshape, dtype=np.float32))
    nspec *= wedge * np.float32(np.sqrt(noise_var / unit_var))
    spec += nspec
    del nspec, wedge
    vol = crop(optics.irfftn3(spec, pshape), pad, shape)
    del spec
    mean, std = float(vol.mean()), float(vol.std())
    vol -= mean
    vol /= std
    if clean is not None:
        clean = ((clean - mean) / std).astype(np.float32)
    return vol.astype(np.float32, copy=False), signal_var, noise_var, clean


def _add_rows(rows, gold, stem, res, names):
    """Append one tomogram's particles to the truth rows and its gold beads to ``gold``."""
    for c, lab in zip(res["centres"], res["labels"]):
        rows["rlnTomoName"].append(stem)
        rows["rlnCoordinateX"].append(f"{c[2]:.2f}")
        rows["rlnCoordinateY"].append(f"{c[1]:.2f}")
        rows["rlnCoordinateZ"].append(f"{c[0]:.2f}")
        rows["discaTrueClass"].append(int(lab) + 1)
        rows["discaTrueClassName"].append(names[lab])
    for c in res["gold"]:
        for key, val in zip(("rlnTomoName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
                             "discaDistractor"), (stem, c[2], c[1], c[0], "gold")):
            gold[key].append(f"{val:.2f}" if isinstance(val, float) else val)


def _tomogram_record(stem, res, defocus):
    """What simulation.json says of one tomogram."""
    return {"tomogram": stem + ".mrc", "n_particles": len(res["labels"]),
            "defocus_um": round(float(defocus), 4), "gold_zyx": res["gold"],
            "vesicle_zyx": res["vesicle"], "signal_var": res["signal_var"],
            "noise_var": res["noise_var"], "rotations": np.round(res["rotations"], 6).tolist()}


def _write_truth(outdir, rows, gold, distractors):
    """truth.star (particles) and, with distractors, distractors.star; returns truth.star."""
    truth = os.path.join(outdir, "truth.star")
    write_star(truth, StarTable(rows, name="particles"),
               comment=f"disca-engine {__version__} simulate tomograms: ground truth, coordinates "
                       "are 0-based voxel centres")
    if distractors:
        write_star(os.path.join(outdir, "distractors.star"), StarTable(gold, name="distractors"),
                   comment="gold fiducial centres (0-based voxels); the vesicle is in simulation.json")
    return truth


def simulate_tomograms(outdir, n_tomograms=2, shape=(96, 256, 256), voxel_A=14.0, classes=5,
                       n_particles=60, snr=0.05, tilt=60.0, seed=0, distractors=True,
                       defocus_um=5.0, snr_box=24, slab=None, defocus_spread_um=0.0,
                       reconstruction="fourier", tilt_step=tiltseries.TILT_STEP,
                       dose_per_tilt=tiltseries.DOSE_PER_TILT):
    """Write ``tomo_001.mrc``... + ``truth.star`` + ``simulation.json`` into ``outdir``;
    return (list of tomogram paths, truth STAR path)."""
    names = resolve_classes(classes)
    shape = _parse_shape(shape)
    _check_defocus(defocus_um, defocus_spread_um)
    if int(n_tomograms) < 1:
        raise EngineError(f"--n-tomograms {n_tomograms}: need at least 1")
    os.makedirs(outdir, exist_ok=True)
    t0 = time.time()
    progress = Progress("simulate tomograms", total=int(n_tomograms), min_interval=0)
    paths, rows, tomo_info = [], {k: [] for k in ("rlnTomoName", "rlnCoordinateX", "rlnCoordinateY",
                                                   "rlnCoordinateZ", "discaTrueClass",
                                                   "discaTrueClassName")}, []
    gold = {k: [] for k in ("rlnTomoName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
                            "discaDistractor")}
    for t in range(int(n_tomograms)):
        defocus = defocus_um  # one per tomogram, from its own stream
        if defocus_spread_um:
            defocus += np.random.default_rng([int(seed), t, 1]).uniform(-1, 1) * defocus_spread_um
        res = generate_tomogram(shape, voxel_A, names, n_particles, snr, tilt,
                                seed=[int(seed), t], distractors=distractors,
                                defocus_um=defocus, snr_box=snr_box, slab=slab,
                                reconstruction=reconstruction, tilt_step=tilt_step,
                                dose_per_tilt=dose_per_tilt, progress=progress)
        stem = f"tomo_{t + 1:03d}"
        path = os.path.join(outdir, stem + ".mrc")
        write_volume(path, res["volume"], voxel_A)
        paths.append(path)
        _add_rows(rows, gold, stem, res, names)
        tomo_info.append(_tomogram_record(stem, res, defocus))
        progress.update(t + 1)
    truth = _write_truth(outdir, rows, gold, distractors)
    info = {"engine_version": __version__, "kind": "tomograms", "seed": seed,
            "parameters": {"n_tomograms": int(n_tomograms), "shape_zyx": list(shape),
                           "voxel_A": voxel_A, "classes": names, "n_particles": int(n_particles),
                           "snr": snr, "snr_box": int(snr_box), "tilt_deg": tilt,
                           "distractors": bool(distractors), "slab_voxels": slab,
                           "kv": 300.0, "cs_mm": 2.7,
                           "defocus_um": defocus_um, "defocus_spread_um": defocus_spread_um,
                           "amplitude_contrast": 0.07, "reconstruction": reconstruction},
            "classes": [{"class": i + 1, "name": c, "description": class_info(c)[0]}
                        for i, c in enumerate(names)],
            "tomograms": tomo_info, "seconds": round(time.time() - t0, 3)}
    if reconstruction == "wbp":  # protein dark, as tomo_wbp makes it
        info["parameters"].update({"tilt_step_deg": tilt_step, "dose_per_tilt": dose_per_tilt,
                                   "ctf_correction": "phaseflip", "contrast": "dark"})
    with atomic_path(os.path.join(outdir, "simulation.json")) as tmp, open(tmp, "w") as fh:
        json.dump(info, fh, indent=1)
    progress.finish(f"{len(paths)} tomograms in {outdir}")
    return paths, truth
