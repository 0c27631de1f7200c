"""STAR files RELION reads, from a particles/clusters table of the engine contract.

- ``subtomogram_tables``: RELION 3.1/4 subtomogram particles (``split_volume_stacks`` first:
  RELION reads no volume stacks), a ``data_optics`` block (pixel
  size, image size, dimensionality 3, optics group, microscope) and a ``data_particles`` block
  with zero angles and origins (DISCA's boxes are centred on their picks, unaligned), so
  ``relion_reconstruct --3d_rot`` and subtomogram averaging read them as they are.
- ``relion5_coordinate_table``: picks for RELION 5's tilt-series pipeline (extract subtomos):
  ``_rlnTomoName`` and ``_rlnCenteredCoordinateX/Y/ZAngst``, the position in Å from the
  tomogram centre (RELION 5 takes voxel ``size / 2`` as the centre), with zero angles.

numpy-only: imported by the Scipion plugin as well as the engine.
"""
import os
import shutil
import subprocess

import numpy as np

from ..errors import EngineError
from . import mrc
from .atomic import atomic_path
from .star import StarTable, _quote

OPTICS_GROUP_NAME = "opticsGroup1"
# RELION's observation model wants a microscope in the optics table even without CTF
# correction; used when the caller knows no better (Scipion passes its acquisition).
DEFAULT_MICROSCOPE = {"voltage": 300.0, "cs": 2.7, "amplitude_contrast": 0.1}
ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
ORIGINS = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
COORDS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
CENTERED = ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst",
            "rlnCenteredCoordinateZAngst")
# RELION labels carried from the engine table when present; DISCA's own (_disca*) are kept
# too: RELION keeps unknown labels and ignores them.
CARRIED = ("rlnTomoName",) + COORDS + ("rlnClassNumber", "rlnMaxValueProbDistribution",
                                       "rlnAutopickFigureOfMerit")


def _check_size(name, value):
    if value is None or not np.isfinite(float(value)) or float(value) <= 0:
        raise EngineError(f"{name} must be a positive number to write a RELION STAR (got {value}): "
                          "set the voxel size of the subtomograms/tomograms")
    return float(value)


def optics_table(pixel_size, box_size, microscope=None):
    """``data_optics`` with one group for 3D subtomograms of ``box_size``^3 voxels."""
    scope = {**DEFAULT_MICROSCOPE, **(microscope or {})}
    return StarTable({
        "rlnOpticsGroup": [1], "rlnOpticsGroupName": [OPTICS_GROUP_NAME],
        "rlnImagePixelSize": [f"{_check_size('pixel size', pixel_size):.6f}"],
        "rlnImageSize": [int(_check_size("box size", box_size))], "rlnImageDimensionality": [3],
        "rlnVoltage": [f"{float(scope['voltage']):.3f}"],
        "rlnSphericalAberration": [f"{float(scope['cs']):.3f}"],
        "rlnAmplitudeContrast": [f"{float(scope['amplitude_contrast']):.3f}"]}, name="optics")


def subtomogram_tables(table, pixel_size, box_size, microscope=None):
    """(optics, particles) for RELION 3.1/4 from an engine particles/clusters table."""
    if "rlnImageName" not in table:
        raise EngineError("the particles table has no _rlnImageName: nothing for RELION to read")
    n = len(table)
    cols = {"rlnImageName": table["rlnImageName"], "rlnOpticsGroup": ["1"] * n}
    if "rlnTomoName" in table:  # RELION 3.1 subtomogram averaging groups by micrograph
        cols["rlnMicrographName"] = table["rlnTomoName"]
    for key in ANGLES + ORIGINS:
        cols[key] = ["0.000000"] * n
    for key, values in table.columns.items():
        if key not in cols and (key in CARRIED or key.startswith("disca")):
            cols[key] = values
    return optics_table(pixel_size, box_size, microscope), StarTable(cols, name="particles")


def split_volume_stacks(table, out_dir, base_dir=".", voxel_size=None):
    """Copy of ``table`` whose ``N@stack.mrcs`` subtomograms are written as single volumes
    ``out_dir/<stack>_NNNNNN.mrc`` (RELION 3.1/4 reads an .mrcs as a stack of 2D images,
    never of volumes; single files are referenced as they are). Returns (table, files written)."""
    names, written = [], 0
    for name in table["rlnImageName"]:
        path, index = mrc.parse_image_name(name, base_dir)
        if index is None:
            names.append(path)
            continue
        stem = os.path.splitext(os.path.basename(path))[0]
        single = os.path.join(os.path.abspath(out_dir), f"{stem}_{index + 1:06d}.mrc")
        mrc.write_volume(single, mrc.read_volume(path, index), voxel_size)
        names.append(single)
        written += 1
    out = StarTable(dict(table.columns), table.name)
    out["rlnImageName"] = names
    return out, written


def relion5_coordinate_table(table, tomogram_shapes, voxel_size):
    """Picks as RELION 5 reads them: Å from the tomogram centre.

    tomogram_shapes: {rlnTomoName: (z, y, x) voxels} of the tomograms the coordinates are in;
    voxel_size: Å per voxel of those tomograms."""
    voxel = _check_size("tomogram voxel size", voxel_size)
    for key in ("rlnTomoName",) + COORDS:
        if key not in table:
            raise EngineError(f"the table has no _{key}: RELION 5 needs each pick's tomogram "
                              "and position (export from subtomograms that have coordinates)")
    names = table["rlnTomoName"]
    missing = sorted(set(names) - set(tomogram_shapes))
    if missing:
        raise EngineError(f"no tomogram size for {', '.join(missing[:3])}: give the shapes of every "
                          "tomogram the picks come from")
    n = len(table)
    cols = {"rlnTomoName": names}
    for axis, (key, out) in enumerate(zip(COORDS, CENTERED)):
        size = np.array([tomogram_shapes[t][2 - axis] for t in names], float)  # shapes are z, y, x
        pos = np.asarray(table[key], float)
        cols[out] = [f"{v:.3f}" for v in (pos - size / 2.0) * voxel]
    for key in ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi") + ANGLES:
        cols[key] = ["0.000000"] * n
    for key in ("rlnClassNumber", "rlnMaxValueProbDistribution", "rlnAutopickFigureOfMerit"):
        if key in table:
            cols[key] = table[key]
    return StarTable(cols, name="particles")


def write_blocks(path, tables, comment=None, version=None):
    """Write several ``data_<name>`` loops into one STAR file, atomically.

    version: RELION's ``# version NNNNN`` line before each block (30001 for RELION 3.1,
    50001 for RELION 5); RELION reads files without it too."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for line in (comment or "").splitlines():
            fh.write(f"# {line}\n")
        for t in tables:
            fh.write(f"\n# version {version}\n" if version else "\n")
            fh.write(f"\ndata_{t.name}\n\nloop_\n")
            keys = list(t.columns)
            for i, k in enumerate(keys, 1):
                fh.write(f"_{k} #{i}\n")
            for row in zip(*(t.columns[k] for k in keys)):
                fh.write(" ".join(_quote(v) for v in row) + "\n")
            fh.write("\n")
    return path


# ---------------------------------------------------------------- checking with RELION
def reconstruct(star_path, out_path, program="relion_reconstruct", timeout=600):
    """Average the subtomograms of ``star_path`` with RELION (``--3d_rot``: 3D images, no
    back-projection); returns the output map's path. Raises EngineError with RELION's last
    lines when it fails."""
    exe = shutil.which(program)
    if exe is None:
        raise EngineError(f"{program} not found on PATH: install RELION (Debian: apt-get install "
                          "relion) or put its bin/ on PATH")
    proc = subprocess.run([exe, "--i", star_path, "--o", out_path, "--3d_rot"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not os.path.isfile(out_path):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise EngineError(f"{program} failed on {star_path} (exit {proc.returncode}): "
                          + " | ".join(tail))
    return out_path


def nyquist_sphere(vol):
    """``vol`` without the Fourier components beyond Nyquist (|k| > 0.5 cycles/voxel, the
    cube's corners: 48% of the coefficients). relion_reconstruct reconstructs only inside
    that sphere, so an average is compared with RELION's within the same band."""
    vol = np.asarray(vol, np.float64)
    k2 = sum(g ** 2 for g in np.meshgrid(*[np.fft.fftfreq(n) for n in vol.shape], indexing="ij"))
    return np.real(np.fft.ifftn(np.fft.fftn(vol) * (k2 <= 0.25)))


def correlation(a, b, band_limit=True):
    """Pearson correlation of two cubic maps inside their inscribed sphere; with
    ``band_limit`` both are first limited to the Nyquist sphere (:func:`nyquist_sphere`)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise EngineError(f"maps differ in shape: {a.shape} and {b.shape}")
    if band_limit:
        a, b = nyquist_sphere(a), nyquist_sphere(b)
    # inside the inscribed sphere: relion_reconstruct's gridding correction damps the corners
    grids = np.meshgrid(*[np.arange(n) - n / 2 for n in a.shape], indexing="ij")
    inside = sum(g ** 2 for g in grids) < (min(a.shape) / 2) ** 2
    a, b = a[inside], b[inside]
    x, y = a - a.mean(), b - b.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))
