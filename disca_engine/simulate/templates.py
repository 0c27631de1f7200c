"""Named template classes, their maps, class sets, and resampling to a target voxel size.

Maps are stored in ``disca_engine/data/templates/<name>.mrc`` at ``REFERENCE_VOXEL_A``
(built by ``scripts/build_templates.py``), in units of electron-density contrast against
vitreous ice (e/A^3): protein interior is about +0.1, so particles are positive here and
come out DARK after the CTF (whose low-frequency sign is negative).
"""
import functools
import os

import numpy as np
from scipy import ndimage

from ..errors import EngineError
from ..io.mrc import read_volume

REFERENCE_VOXEL_A = 7.0
# Splatted maps hold the sum of atomic numbers per volume (~0.40 e/A^3 in protein without
# hydrogens, ~0.44 with). Against ice (0.334 e/A^3) a full protein voxel has contrast
# 0.44 - 0.334 ~ 0.106 = 0.24 x its electron density.
CONTRAST_PER_ELECTRON = 0.24

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "data", "templates")

# name -> (description, approximate mass in kDa, source). Masses: atomic models from their
# summed atomic numbers (Z/mass 0.5 for heavy atoms, +7% hydrogen), phantoms from their
# volume at 0.81 Da/A^3.
CLASSES = {
    "ribosome": ("80S ribosome model (PDB 6ZU5)", 2450, "atomic"),
    "tric": ("TRiC/CCT chaperonin, two octameric rings (PDB 4V8R, first complex)", 910, "atomic"),
    "ruvab": ("RuvB hexamer + RuvA on Holliday-junction DNA (PDB 7PBL)", 260, "atomic"),
    "barrel": ("phantom: four stacked heptameric rings (proteasome-like barrel)", 940, "phantom"),
    "blobs": ("phantom: fixed random compact assembly of 22 globules, no symmetry", 580, "phantom"),
    "shell": ("phantom: hollow 24-subunit cage, octahedral symmetry (ferritin-like)", 550, "phantom"),
    "tetra": ("phantom: core with four two-domain arms, tetrahedral symmetry", 430, "phantom"),
    "ring": ("phantom: hexameric ring of two-lobed subunits (AAA+-like)", 300, "phantom"),
    "rod": ("phantom: actin-like helical filament piece, 9 subunits", 420, "phantom"),
    "dumbbell": ("phantom: two unequal lobes joined by a neck", 250, "phantom"),
    "globule": ("phantom: small three-domain globular protein", 70, "phantom"),
}

CLASS_SETS = {
    # the default: a spread of sizes and shapes, like the paper's five (0.3-3 MDa)
    "default": ["ribosome", "tric", "ruvab", "shell", "ring"],
    # similar size (r95 5-6 voxels at 14 A, 0.45-0.95 MDa): shape, not size, separates them
    "similar": ["tric", "barrel", "blobs", "shell", "tetra"],
    # very different size and shape: easy at moderate SNR
    "different": ["ribosome", "barrel", "rod", "dumbbell", "globule"],
    "all": list(CLASSES),
}


def resolve_classes(spec):
    """Class names from an int (first N of ``default`` then the others), a set name,
    a comma-separated list of names, or a list of names."""
    if spec is None:
        spec = "default"
    if isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.strip().isdigit()):
        n = int(spec)
        order = CLASS_SETS["default"] + [c for c in CLASSES if c not in CLASS_SETS["default"]]
        if not 1 <= n <= len(order):
            raise EngineError(f"--classes {n}: choose between 1 and {len(order)} classes")
        return order[:n]
    if isinstance(spec, str):
        spec = spec.strip()
        if spec in CLASS_SETS:
            return list(CLASS_SETS[spec])
        names = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = list(spec)
    unknown = [n for n in names if n not in CLASSES]
    if unknown:
        raise EngineError(f"unknown class name(s) {', '.join(unknown)}: choose from "
                          f"{', '.join(CLASSES)} or a set ({', '.join(CLASS_SETS)})")
    if len(set(names)) != len(names):
        raise EngineError(f"class list {','.join(names)} repeats a name: list each class once")
    if not names:
        raise EngineError("empty class list: give e.g. --classes 5 or --classes ribosome,tric")
    return names


@functools.lru_cache(maxsize=None)
def reference_map(name):
    """The stored map of ``name`` at REFERENCE_VOXEL_A (read-only float32 [z, y, x])."""
    if name not in CLASSES:
        resolve_classes([name])  # raises the helpful error
    path = os.path.join(TEMPLATE_DIR, f"{name}.mrc")
    if not os.path.isfile(path):
        raise EngineError(f"template map {path} is missing from the installation: reinstall the "
                          "package or run scripts/build_templates.py")
    vol = read_volume(path)
    vol.setflags(write=False)
    return vol


class Template:
    """A class map resampled to a voxel size, with its centre of mass and radii (voxels)."""

    def __init__(self, name, vol, voxel_a):
        self.name = name
        self.voxel_a = voxel_a
        self.vol = np.ascontiguousarray(vol, dtype=np.float32)
        pos = np.clip(self.vol, 0, None)
        grid = np.indices(pos.shape).reshape(3, -1).astype(float)
        w = pos.ravel()
        self.com = grid @ w / w.sum()  # [z, y, x]
        r = np.sqrt(((grid - self.com[:, None]) ** 2).sum(0))
        order = np.argsort(r)
        cum = np.cumsum(w[order]) / w.sum()
        self.r95 = float(r[order][np.searchsorted(cum, 0.95)])
        self.r99 = float(r[order][np.searchsorted(cum, 0.99)])
        # outer radius: farthest voxel holding 5% of the peak density
        self.rmax = float(r[w > 0.05 * w.max()].max())

    @property
    def diameter_a(self):
        return 2 * self.rmax * self.voxel_a


@functools.lru_cache(maxsize=64)
def template(name, voxel_a):
    """``Template`` of class ``name`` at ``voxel_a`` A/voxel (>= REFERENCE_VOXEL_A)."""
    voxel_a = float(voxel_a)
    if voxel_a < REFERENCE_VOXEL_A - 1e-6:
        raise EngineError(f"voxel size {voxel_a:g} A is finer than the stored templates "
                          f"({REFERENCE_VOXEL_A:g} A): use --voxel-A >= {REFERENCE_VOXEL_A:g}")
    ref = reference_map(name).astype(np.float64)
    f = voxel_a / REFERENCE_VOXEL_A
    if abs(f - 1) < 1e-6:
        return Template(name, ref, voxel_a)
    # widen the stored blur (0.4 voxel Gaussian + 1-voxel box, std ~0.49 voxel) so the
    # result looks as if built at the new voxel size; then sample linearly
    extra = 0.49 * np.sqrt(f * f - 1.0)
    ref = ndimage.gaussian_filter(ref, extra, mode="constant")
    n = ref.shape[0]
    m = int(np.ceil(n / f)) + 2
    m += m % 2
    ax = (np.arange(m) - m // 2) * f + n // 2
    coords = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"))
    vol = ndimage.map_coordinates(ref, coords, order=1, mode="constant", cval=0.0)
    return Template(name, vol, voxel_a)


def describe(names=None, voxel_a=14.0):
    """Rows (name, description, kDa, diameter A, r95 voxels) for docs and ``--list``."""
    rows = []
    for name in names or CLASSES:
        t = template(name, voxel_a)
        desc, kda, _ = CLASSES[name]
        rows.append((name, desc, kda, round(t.diameter_a), round(t.r95, 1)))
    return rows
