"""Named template classes, their maps, class sets, and resampling to a target voxel size.

Maps are stored in ``disca_engine/data/templates/<name>.mrc`` at ``REFERENCE_VOXEL_A``
(built by ``scripts/build_templates.py``), in units of electron-density contrast against
vitreous ice (e/A^3): protein interior is about +0.1, so particles are positive here and
come out DARK after the CTF (whose low-frequency sign is negative).

Users can add their own classes by path in ``--classes``: a density map (.mrc/.map,
protein positive, voxel size in the header) or an atomic model (.pdb/.ent/.cif/.mmcif,
optionally .gz). The class is named after the file (``my_complex.pdb.gz`` -> my_complex).
"""
import functools
import os

import numpy as np
from scipy import ndimage

from ..errors import EngineError
from ..io.mrc import read_volume, voxel_size
from .atoms import CONTRAST_PER_ELECTRON, atomic_map  # noqa: F401 (re-exported)

REFERENCE_VOXEL_A = 7.0
# Splatted maps hold the sum of atomic numbers per volume (~0.40 e/A^3 in protein without
# hydrogens, ~0.44 with). Against ice (0.334 e/A^3) a full protein voxel has contrast
# 0.44 - 0.334 ~ 0.106 = 0.24 x its electron density (CONTRAST_PER_ELECTRON).

# User density maps are scaled so the mean of their voxels above 30% of the maximum is this
# value, the mean of the same statistic over the stored atomic maps at 7 A (0.064-0.068).
USER_MAP_CONTRAST = 0.065
MAP_EXTENSIONS = (".mrc", ".map")
MODEL_EXTENSIONS = (".pdb", ".ent", ".cif", ".mmcif")
USER_CLASSES = {}  # class name -> absolute path of a user map or model

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
    # fragments of the real complexes (scripts/build_templates.py selects their chains)
    "ribo60s": ("60S subunit of the 80S ribosome (PDB 6ZU5, chains L*)", 1530, "atomic"),
    "ribo40s": ("40S subunit of the 80S ribosome (PDB 6ZU5, chains S*)", 920, "atomic"),
    "tric_ring": ("one octameric ring of TRiC (PDB 4V8R)", 460, "atomic"),
    "ruvb3": ("half of the RuvB hexamer: three subunits, an open arc (PDB 7PBL, chains A-C)", 120, "atomic"),
    # more phantoms (phantoms.py), several of them close in size to each other
    "ring7": ("phantom: heptameric ring of globules", 220, "phantom"),
    "ring8": ("phantom: octameric ring of two-lobed subunits", 280, "phantom"),
    "barrel3": ("phantom: three stacked hexameric rings", 560, "phantom"),
    "cage12": ("phantom: hollow icosahedral cage of 12 subunits", 330, "phantom"),
    "propeller": ("phantom: flat seven-bladed propeller", 190, "phantom"),
    "lshape": ("phantom: two arms at a right angle", 150, "phantom"),
    "dimer": ("phantom: two equal globules", 180, "phantom"),
    "helix12": ("phantom: helical filament of 12 subunits", 260, "phantom"),
    "triskelion": ("phantom: three bent arms from a hub", 190, "phantom"),
    "cube8": ("phantom: eight globules at the corners of a cube", 380, "phantom"),
    "yshape": ("phantom: antibody-like Y of six domains", 120, "phantom"),
    "disc": ("phantom: flat hexagonal sheet of 19 globules", 260, "phantom"),
    "trimer": ("phantom: triangle of three globules with a cap", 210, "phantom"),
}

# The accuracy benchmark's split of the templates, made once: defaults are chosen on
# structure sets drawn from the tuning half and reported on sets from the report half.
# The five of the old default set (used to tune the earlier 'fast' preset) are all in the
# tuning half; each half mixes atomic models, fragments and phantoms of similar sizes.
TEMPLATE_HALVES = {
    "tuning": ["ribosome", "tric", "ruvab", "shell", "ring", "barrel", "blobs", "ribo40s",
               "ring7", "cage12", "propeller", "lshape", "dimer", "helix12"],
    "report": ["ribo60s", "tric_ring", "ruvb3", "tetra", "rod", "dumbbell", "globule",
               "ring8", "barrel3", "triskelion", "cube8", "yshape", "disc", "trimer"],
}

CLASS_SETS = {
    # the default: a spread of sizes and shapes, like the paper's five (0.3-3 MDa)
    "default": ["ribosome", "tric", "ruvab", "shell", "ring"],
    # similar size (r95 5-6 voxels at 14 A, 0.45-0.95 MDa): shape, not size, separates them
    "similar": ["tric", "barrel", "blobs", "shell", "tetra"],
    # very different size and shape: easy at moderate SNR
    "different": ["ribosome", "barrel", "rod", "dumbbell", "globule"],
    "all": list(CLASSES),
    # close in size and shape (rings, barrels, cages), one set per half
    "similar_tuning": ["tric", "ring", "barrel", "shell", "ring7", "cage12"],
    "similar_report": ["tric_ring", "ruvb3", "ring8", "barrel3", "cube8", "disc"],
}


def structure_set(half, k, seed):
    """``k`` templates drawn (without replacement) from one half of TEMPLATE_HALVES."""
    names = TEMPLATE_HALVES[half]
    if not 1 <= k <= len(names):
        raise EngineError(f"structure set of {k}: the {half} half holds {len(names)} templates")
    rng = np.random.default_rng([int(seed), int(k), 8])
    return [names[i] for i in sorted(rng.choice(len(names), k, replace=False))]


def _user_class(token):
    """Register a user file as a class; return its name, or None if ``token`` is no path."""
    base = token[:-3] if token.lower().endswith(".gz") else token
    ext = os.path.splitext(base)[1].lower()
    if ext not in MAP_EXTENSIONS + MODEL_EXTENSIONS:
        return None
    if not os.path.isfile(token):
        raise EngineError(f"class file {token} not found: give an existing .mrc/.map density map "
                          "or .pdb/.cif atomic model")
    if ext in MAP_EXTENSIONS and token.lower().endswith(".gz"):
        raise EngineError(f"{token}: gzipped maps are not supported; gunzip it first")
    name = os.path.basename(os.path.splitext(base)[0])
    path = os.path.abspath(token)
    if name in CLASSES:
        raise EngineError(f"class file {token} would be named '{name}', which is already a "
                          "class: rename the file")
    if USER_CLASSES.get(name, path) != path:  # same name, other file: forget the old one
        _reference.cache_clear()
        template.cache_clear()
    USER_CLASSES[name] = path
    return name


def resolve_classes(spec):
    """Class names from an int (first N of ``default`` then the others), a set name,
    a comma-separated list of names and/or paths of user maps/models, or a list."""
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
        tokens = [t.strip() for t in spec.split(",") if t.strip()]
    else:
        tokens = [str(t) for t in spec]
    names, files = [], {}
    for tok in tokens:
        user = None if tok in CLASSES or tok in USER_CLASSES else _user_class(tok)
        if user and files.setdefault(user, tok) != tok:
            raise EngineError(f"class files {files[user]} and {tok} would both be named '{user}': "
                              "rename one of them")
        names.append(user or tok)
    unknown = [n for n in names if n not in CLASSES and n not in USER_CLASSES]
    if unknown:
        raise EngineError(f"unknown class name(s) {', '.join(unknown)}: choose from "
                          f"{', '.join(CLASSES)}, a set ({', '.join(CLASS_SETS)}), or the path "
                          "of a .mrc/.map density map or .pdb/.cif atomic model")
    if len(set(names)) != len(names):
        raise EngineError(f"class list {','.join(names)} repeats a name: list each class once")
    if not names:
        raise EngineError("empty class list: give e.g. --classes 5 or --classes ribosome,tric")
    return names


def class_info(name):
    """(description, approximate kDa or None) of a built-in or user class."""
    if name in CLASSES:
        return CLASSES[name][0], CLASSES[name][1]
    return f"user file {USER_CLASSES.get(name, name)}", None


def _user_map(path):
    """A user density map as contrast: background (median of the box faces) removed,
    negatives clipped, scaled to USER_MAP_CONTRAST."""
    vs = voxel_size(path)
    if not vs:
        raise EngineError(f"{path} has no voxel size in its header: set it (e.g. with "
                          "'mrcfile' or 'e2proc3d.py --apix') and try again")
    vol = read_volume(path).astype(np.float64)
    faces = np.concatenate([vol[[0, -1]].ravel(), vol[:, [0, -1]].ravel(), vol[:, :, [0, -1]].ravel()])
    vol = np.clip(vol - np.median(faces), 0, None)
    if vol.max() <= 0:
        raise EngineError(f"{path} has no density above its background: is protein positive "
                          "(white) in it? Invert it if it is dark")
    # keep the particle, drop isolated noise specks: components of the 10%-of-peak mask
    # holding at least 5% of the largest one's voxels, dilated by 2 voxels
    labels, n = ndimage.label(vol > 0.1 * vol.max())
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.05 * sizes.max()))
    vol *= ndimage.binary_dilation(keep, iterations=2)
    vol *= USER_MAP_CONTRAST / vol[vol > 0.3 * vol.max()].mean()
    return vol.astype(np.float32), float(vs)


@functools.lru_cache(maxsize=None)
def _reference(name):
    """(map, voxel size) of a class before resampling."""
    if name in USER_CLASSES:
        path = USER_CLASSES[name]
        base = path[:-3] if path.lower().endswith(".gz") else path
        if base.lower().endswith(MAP_EXTENSIONS):
            vol, vs = _user_map(path)
        else:
            vol, _, _ = atomic_map(path, REFERENCE_VOXEL_A)
            vs = REFERENCE_VOXEL_A
        vol.setflags(write=False)
        return vol, vs
    return reference_map(name), REFERENCE_VOXEL_A


@functools.lru_cache(maxsize=None)
def reference_map(name):
    """The stored map of built-in class ``name`` at REFERENCE_VOXEL_A (read-only float32)."""
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
        # outer radius: farthest voxel holding 5% of the peak density (used for spacing);
        # rfull: farthest voxel above 0.1% of the peak (what is drawn)
        self.rmax = float(r[w > 0.05 * w.max()].max())
        self.rfull = float(r[w > 1e-3 * w.max()].max())

    @property
    def diameter_a(self):
        return 2 * self.rmax * self.voxel_a


@functools.lru_cache(maxsize=64)
def template(name, voxel_a):
    """``Template`` of class ``name`` at ``voxel_a`` A/voxel (>= the class map's voxel)."""
    voxel_a = float(voxel_a)
    ref, ref_voxel = _reference(name)
    if voxel_a < ref_voxel - 1e-6:
        raise EngineError(f"voxel size {voxel_a:g} A is finer than the map of class '{name}' "
                          f"({ref_voxel:g} A): use --voxel-A >= {ref_voxel:g}")
    ref = ref.astype(np.float64)
    f = voxel_a / ref_voxel
    if abs(f - 1) < 1e-6:
        return Template(name, ref, voxel_a)
    # widen the stored blur (0.4 voxel Gaussian + 1-voxel box, std ~0.49 voxel) so the
    # result looks as if built at the new voxel size; then sample linearly
    extra = 0.49 * np.sqrt(f * f - 1.0)
    ref = ndimage.gaussian_filter(ref, extra, mode="constant")
    n = np.array(ref.shape)
    m = int(np.ceil(n.max() / f)) + 2
    m += m % 2
    ax = (np.arange(m) - m // 2) * f
    coords = np.stack(np.meshgrid(ax + n[0] // 2, ax + n[1] // 2, ax + n[2] // 2, indexing="ij"))
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
