"""Files of the tilt-series subtomograms: MRCs (or one stack), ``particles.star`` with the
truth columns, ``simulation.json``; and ``simulate_tiltseries_subtomograms``, which writes
them. Everything is computed before the first file is written, so a bad argument leaves
nothing behind; ``particles.star`` is written after the volumes."""
import json
import os
import time

import numpy as np

from .. import __version__, contract
from ..io.atomic import atomic_path
from ..io.mrc import write_volume
from ..io.star import StarTable, write_star
from ..progress import Progress
from . import tiltseries, truth
from .subtomos import StackWriter
from .templates import class_info, resolve_classes
from .tiltsubtomos import (DEFOCUS_UM, GOLD_FRACTION, MEMBRANE_FRACTION, NEIGHBOURS, SNR,
                           generate_tiltseries_subtomograms)


def write_boxes(outdir, data, voxel_a, stack):
    """Write the boxes; return their image names relative to ``outdir``."""
    n, size = len(data), data.shape[-1]
    if stack:
        writer = StackWriter(os.path.join(outdir, "particles.mrcs"), n, size, voxel_a)
        try:
            writer.write(np.arange(n), data)
        finally:
            writer.close()
        return [f"{i + 1}@particles.mrcs" for i in range(n)]
    os.makedirs(os.path.join(outdir, contract.SUBTOMOS_DIR), exist_ok=True)
    names = [f"{contract.SUBTOMOS_DIR}/sub_{i + 1:06d}.mrc" for i in range(n)]
    for name, vol in zip(names, data):
        write_volume(os.path.join(outdir, name), vol, voxel_a)
    return names


def truth_table(image_names, res):
    """``data_particles`` with the image names and the truth columns."""
    names = list(res["class_names"]) + ([truth.JUNK] if (res["labels"] == len(res["class_names"])).any() else [])
    labels = res["labels"]
    return StarTable({
        contract.IMAGE: image_names,
        contract.TRUE_CLASS: [int(c) + 1 for c in labels],
        contract.TRUE_CLASS_NAME: [names[c] for c in labels],
        truth.TRUE_DEFOCUS: [f"{d:.4f}" for d in res["defocus_um"]],
        truth.TRUE_NEIGHBOURS: [int(k) for k in res["n_neighbours"]],
        truth.TRUE_MEMBRANE: [int(m) for m in res["membrane"]],
        truth.TRUE_GOLD: [int(g) for g in res["gold"]],
    }, name="particles"), names


def _scene_record(scene, all_names):
    rec = {"n_background": scene.n_background,
           "neighbours": [{"class": all_names[i], "centre_zyx": np.round(c, 3).tolist()}
                          for (i, _, c), role in zip(scene.bodies, scene.roles) if role == "neighbour"],
           "gold_zyx": [np.round(g, 3).tolist() for g in scene.gold]}
    if scene.membrane is not None:
        rec["membrane"] = {"sphere_centre_zyx": np.round(scene.membrane.centre, 3).tolist(),
                           "radius_voxels": round(scene.membrane.radius, 3)}
    return rec


def particle_records(image_names, res, all_names):
    """Per box: class, pose, shift, underfocus, its scene and its signal and noise variance."""
    out = []
    for i, name in enumerate(image_names):
        rec = {"image": name, "class": int(res["labels"][i]) + 1,
               "rotation": np.round(res["rotations"][i], 6).tolist(),
               "shift": np.round(res["shifts"][i], 4).tolist(),
               "defocus_um": round(float(res["defocus_um"][i]), 4),
               "junk_kind": res["junk_kind"][i],
               "signal_var": float(res["signal_var"][i]), "noise_var": float(res["noise_var"][i])}
        rec.update(_scene_record(res["scenes"][i], all_names))
        out.append(rec)
    return out


def write_outputs(outdir, res, voxel_a, stack, parameters, kind, comment, t0):
    """Volumes, simulation.json and, last, particles.star for a result of the tilt-series path."""
    os.makedirs(outdir, exist_ok=True)
    image_names = write_boxes(outdir, res["data"], voxel_a, stack)
    table, names = truth_table(image_names, res)
    all_names = list(res["class_names"]) + [c for c in res["neighbour_classes"]
                                            if c not in res["class_names"]]
    info = {"engine_version": __version__, "kind": kind, "seed": parameters.get("seed"),
            "parameters": parameters,
            "classes": [{"class": i + 1, "name": c, "count": int((res["labels"] == i).sum()),
                         "description": "junk boxes: " + ", ".join(("empty", "gold", "membrane"))
                         if c == truth.JUNK else class_info(c)[0]} for i, c in enumerate(names)],
            "conventions": {"rotation": "3x3 matrix in [x, y, z] mapping template to particle "
                                        "coordinates about the template centre of mass",
                            "shift": "[z, y, x] voxels of the centre of mass from box index size//2",
                            "scene": "[z, y, x] voxels from the box centre"},
            "particles": particle_records(image_names, res, all_names),
            "seconds": round(time.time() - t0, 3)}
    with atomic_path(os.path.join(outdir, "simulation.json")) as tmp, open(tmp, "w") as fh:
        json.dump(info, fh, indent=1)
    star = os.path.join(outdir, contract.PARTICLES_STAR)
    write_star(star, table, comment=comment)
    return star


def simulate_tiltseries_subtomograms(
        outdir, classes=5, n_per_class=40, snr=SNR, tilt=60.0, tilt_step=tiltseries.TILT_STEP,
        defocus_um=DEFOCUS_UM, neighbours=NEIGHBOURS, membrane_fraction=MEMBRANE_FRACTION,
        gold_fraction=GOLD_FRACTION, junk_fraction=0.0, size=24, voxel_A=14.0, seed=0,
        stack=False, max_shift=2.0, defocus_spread_um=0.0, dose_per_tilt=tiltseries.DOSE_PER_TILT,
        snr_mode="particle", ctf_correction="phaseflip", contrast="bright", neighbour_classes=None):
    """Write tilt-series subtomograms + ``particles.star`` (truth columns) +
    ``simulation.json`` into ``outdir``; return the path of ``particles.star``. Parameters
    as ``generate_tiltseries_subtomograms``."""
    t0 = time.time()
    names = resolve_classes(classes)
    progress = Progress("simulate tiltseries")   # its total is set once the boxes are planned
    res = generate_tiltseries_subtomograms(
        names, n_per_class, snr, tilt, tilt_step, defocus_um, neighbours, membrane_fraction,
        gold_fraction, junk_fraction, size, voxel_A, seed, max_shift, defocus_spread_um,
        dose_per_tilt, snr_mode, ctf_correction, contrast, neighbour_classes, progress)
    params = {"classes": names, "n_per_class": int(n_per_class), "snr": snr, "snr_mode": snr_mode,
              "tilt_deg": tilt, "tilt_step_deg": tilt_step, "tilt_angles": res["tilt_angles"].tolist(),
              "dose_per_tilt": dose_per_tilt, "dose_order": "dose-symmetric, groups of "
              f"{tiltseries.DOSE_GROUP}", "defocus_um": np.atleast_1d(defocus_um).astype(float).tolist(),
              "defocus_spread_um": defocus_spread_um, "neighbours": np.atleast_1d(neighbours).astype(int).tolist(),
              "neighbour_classes": res["neighbour_classes"], "membrane_fraction": membrane_fraction,
              "gold_fraction": gold_fraction, "junk_fraction": junk_fraction, "size": int(size),
              "voxel_A": voxel_A, "max_shift_voxels": max_shift, "kv": 300.0, "cs_mm": 2.7,
              "amplitude_contrast": 0.07, "ctf_correction": ctf_correction, "contrast": contrast,
              "stack": bool(stack), "seed": seed, "scene_side_voxels": res["scenes"][0].side}
    star = write_outputs(outdir, res, voxel_A, stack, params, "tiltseries_subtomograms",
                         f"disca-engine {__version__} simulate tiltseries: {len(names)} classes x "
                         f"{n_per_class}, SNR {snr:g}, tilt +-{tilt:g} step {tilt_step:g}", t0)
    progress.finish(f"{len(res['labels'])} subtomograms in {outdir}")
    return star


def simulate_like_real(outdir, real_dir, classes, n_per_class=40, snr=None, seed=0,
                       max_shift=None, stack=False):
    """Write boxes of ``classes`` simulated through the tilt series of the real particle set
    in ``real_dir`` (``likereal``), with ``particles.star`` and ``simulation.json``; return
    the path of ``particles.star``. ``snr`` defaults to the real boxes' (``likereal.SNR``)."""
    from . import likereal
    t0 = time.time()
    snr = likereal.SNR if snr is None else snr
    max_shift = likereal.MAX_SHIFT if max_shift is None else max_shift
    names = resolve_classes(classes)
    progress = Progress("simulate like-real")
    res = likereal.generate_like_real(real_dir, names, n_per_class, snr, seed, max_shift, progress)
    params = {"classes": names, "n_per_class": int(n_per_class), "snr": snr, "snr_mode": "particle",
              "real_dir": os.path.abspath(real_dir), "size": res["size"], "voxel_A": res["voxel_A"],
              "max_shift_voxels": max_shift, "seed": seed, "stack": bool(stack),
              "processing": "WarpTools premultiplied images / max(E|CTF|, 0.07) x E, band 15/16 "
                            "Nyquist, Fourier insertion, z mirrored, shells >= Nyquist removed, "
                            "noise spectrum measured per tomogram and tilt, 3D shell gain to the "
                            "real boxes' mean spectrum, protein bright",
              "source_particle": res["source_particle"].tolist()}
    star = write_outputs(outdir, res, res["voxel_A"], stack, params, "like_real_subtomograms",
                         f"disca-engine {__version__} simulate like-real: {len(names)} classes x "
                         f"{n_per_class} through the tilt series of {real_dir}, SNR {snr:g}", t0)
    progress.finish(f"{len(res['labels'])} subtomograms in {outdir}")
    return star
