"""Pick an MRC file and write the coordinates STAR file (and its threshold as JSON)."""
import json
import os

import numpy as np

from .. import contract
from ..errors import EngineError
from ..io.outdir import check_output_file, refuse_overwriting_inputs
from ..io.star import StarTable, write_star
from ..progress import Progress
from .pipeline import pick_tomogram
from .threshold import DEFAULT_THRESHOLD_SIGMA
from .volume import FileSource


def tomo_name_for(path):
    """Default _rlnTomoName: the file name without folder and extension."""
    base = os.path.basename(os.fspath(path))
    for ext in (".mrc", ".rec", ".st", ".map", ".mrcs"):
        if base.lower().endswith(ext):
            return base[:-len(ext)]
    return os.path.splitext(base)[0]


def coords_table(result, tomo_name):
    n = len(result)
    x, y, z = (result.xyz[:, k] for k in range(3)) if n else ([], [], [])
    table = StarTable(name="coordinates")
    table[contract.TOMO_NAME] = [tomo_name] * n
    for key, values in zip(contract.COORDS, (x, y, z)):
        table[key] = [f"{v:.2f}" for v in values]
    table[contract.SCORE] = [f"{v:.6g}" for v in result.scores]
    table[contract.DOG_ZSCORE] = [f"{v:.3f}" for v in result.zscores]
    return table


def describe(result, input_path=None):
    p = result.params
    if result.threshold_mode == "absolute":
        how = "absolute, given"
    else:
        k = DEFAULT_THRESHOLD_SIGMA if p.threshold_sigma is None else p.threshold_sigma
        how = f"automatic: median + {k:g} robust sigma"
    lines = [
        "disca-engine pick: DoG picks, sorted by score (highest first)",
        "coordinates: 0-based voxel centres of the input tomogram (voxel i has centre i)",
    ]
    if input_path:
        lines.append(f"input: {os.path.abspath(input_path)}  shape (z,y,x): {result.shape}")
    lines += [
        f"voxel {p.voxel_A:g} A, bin {p.bin}, particle diameter {p.particle_diameter_A:g} A, "
        f"contrast {p.contrast}",
        f"sigma1 {p.sigma1_vox:.3f} / sigma2 {p.sigma2_vox:.3f} picking voxels, min distance "
        f"{p.min_distance_vox:.2f}, border {p.border_vox} picking voxels, max picks {p.max_picks}",
        f"threshold {result.threshold:.6g} ({how}; background median {result.background_median:.6g}, "
        f"robust sigma {result.background_sigma:.6g})",
        f"{result.n_candidates} local maxima above threshold, {len(result)} picks after suppression",
    ]
    return "\n".join(lines)


def check_room(shape, input, particle_diameter_A, voxel_A):
    """A 2D image, or a tomogram smaller than one particle, cannot hold picks."""
    if shape[0] == 1:
        raise EngineError(f"{input} is a 2D image ({shape[2]} x {shape[1]}), not a tomogram: give a 3D MRC")
    across = particle_diameter_A / voxel_A
    if across >= min(shape):
        raise EngineError(f"a particle of {particle_diameter_A:g} A is {across:.0f} voxels of {voxel_A:g} A "
                          f"across, but {input} is only {shape[2]} x {shape[1]} x {shape[0]} voxels: check "
                          "--particle-diameter-A (Angstrom) and the voxel size")


def stats_path(coords_star):
    """Path of the JSON beside a coords STAR holding the threshold and background statistics."""
    base = os.fspath(coords_star)
    if base.lower().endswith(".star"):
        base = base[:-len(".star")]
    return base + ".pick.json"


def pick_stats(result):
    """The numbers a viewer needs to judge the picks (threshold, background, parameters)."""
    p = result.params
    return {"threshold": float(result.threshold), "threshold_mode": result.threshold_mode,
            "threshold_sigma": p.threshold_sigma,
            "background_median": float(result.background_median),
            "background_sigma": float(result.background_sigma),
            "n_candidates": int(result.n_candidates), "n_picks": len(result),
            "particle_diameter_A": p.particle_diameter_A, "voxel_A": p.voxel_A, "bin": p.bin,
            "contrast": p.contrast}


def write_pick_stats(coords_star, result):
    from ..io.atomic import atomic_path
    path = stats_path(coords_star)
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(pick_stats(result), fh, indent=1)
    return path


def read_pick_stats(coords_star):
    """The JSON written beside ``coords_star`` by :func:`pick_file`, or None if absent."""
    path = stats_path(coords_star)
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def pick_file(input, output, particle_diameter_A, voxel_A=None, tomo_name=None, mask=None,
              quiet=False, overwrite=False, **params):
    """Pick the MRC tomogram ``input`` and write ``output`` (coords STAR).

    ``params`` are those of :func:`pick_tomogram`. The voxel size comes from the header
    unless ``voxel_A`` is given. An existing ``output`` is replaced only with ``overwrite``.
    Returns the :class:`PickResult`.
    """
    output = check_output_file(output)
    mask_file = mask if isinstance(mask, (str, os.PathLike)) else None  # or an array
    refuse_overwriting_inputs([output, stats_path(output)], [("tomogram", input), ("mask", mask_file)])
    if os.path.lexists(output) and not overwrite:
        raise EngineError(f"{output} already exists (an earlier pick?): choose another --output, or "
                          "add --overwrite to replace it")
    src = FileSource(input)
    vs = voxel_A if voxel_A is not None else src.voxel_size
    if vs is None:
        raise EngineError(f"voxel size of {input} unknown (header has none): give --voxel-A")
    check_room(src.shape, input, particle_diameter_A, vs)
    if mask is not None and isinstance(mask, (str, os.PathLike)) and not os.path.isfile(mask):
        raise EngineError(f"mask not found: {mask}")
    if voxel_A is None and vs and max(src.voxel_sizes) > 1.01 * min(src.voxel_sizes) and not quiet:
        print(f"[pick] warning: {input} has anisotropic voxels {src.voxel_sizes} (x, y, z); picking "
              f"assumes cubic voxels of {vs:g} A (x)", flush=True)
    progress = None if quiet else Progress("pick")
    result = pick_tomogram(src, vs, particle_diameter_A, mask=mask, progress=progress, **params)
    text = describe(result, input)
    # the statistics first: a coords STAR present means both files are complete (resume)
    write_pick_stats(output, result)
    write_star(output, coords_table(result, tomo_name or tomo_name_for(input)), comment=text)
    if not quiet and len(result) == 0:
        print(f"[pick] warning: no picks in {input}: lower the threshold (--threshold-sigma, now "
              f"{result.threshold:.4g}) or check --contrast and --particle-diameter-A", flush=True)
    if progress is not None:
        secs = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
        progress.log(text.splitlines()[-2])
        progress.finish(f"{len(result)} picks -> {output} ({secs})")
    return result


def read_coords(path, tomo_name=None):
    """Rows of a coords STAR for one tomogram: (xyz N x 3, scores or None, row indices, name).

    With several tomograms in the file, only rows whose _rlnTomoName equals ``tomo_name``
    are returned; with one (or no names) all rows are.
    """
    from ..io.star import read_star
    table = read_star(path)
    if len(table) == 0:
        raise EngineError(f"{path} has no coordinates (empty table): pick with a lower threshold first")
    rows = np.arange(len(table))
    names = table[contract.TOMO_NAME] if contract.TOMO_NAME in table else None
    name = tomo_name
    if names is not None:
        distinct = sorted(set(names))
        if len(distinct) > 1:
            if tomo_name is None:
                raise EngineError(f"{path} has coordinates of {len(distinct)} tomograms "
                                  f"({', '.join(distinct[:5])}...): give --tomo-name")
            rows = np.array([i for i, n in enumerate(names) if n == tomo_name], dtype=int)
            if rows.size == 0:
                raise EngineError(f"{path} has no coordinates for tomogram '{tomo_name}'; it has: "
                                  + ", ".join(distinct[:10]))
        elif name is None:
            name = distinct[0]
    sub = table.take(rows)
    xyz = np.stack([sub.column(f"rlnCoordinate{a}", float, path) for a in "XYZ"], axis=1)
    scores = (sub.column(contract.SCORE, float, path)
              if contract.SCORE in sub else None)
    return xyz, scores, rows, name
