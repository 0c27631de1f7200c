"""Atomic models -> density maps (own PDB/mmCIF reader, gzip aware; no biopython).

Only atom records are read: the first model, altloc ' ' or 'A', no water. Atoms are
splatted (trilinear) on a grid 4x finer than the target voxel, weighted by their atomic
number, blurred by a Gaussian of 0.4 target voxel, block-summed to the target voxel and
converted to contrast against vitreous ice (``templates.CONTRAST_PER_ELECTRON``).
Used by ``scripts/build_templates.py`` and for user models given to ``--classes``.
"""
import gzip
import re

import numpy as np
from scipy import ndimage

from ..errors import EngineError

CONTRAST_PER_ELECTRON = 0.24  # see templates.py

# atomic numbers of the elements found in macromolecular models (others count as carbon)
ATOMIC_NUMBER = {"H": 1, "D": 1, "C": 6, "N": 7, "O": 8, "F": 9, "NA": 11, "MG": 12, "P": 15,
                 "S": 16, "CL": 17, "K": 19, "CA": 20, "MN": 25, "FE": 26, "CO": 27, "NI": 28,
                 "CU": 29, "ZN": 30, "SE": 34, "BR": 35, "I": 53}

def _open_text(path):
    return gzip.open(path, "rt") if path.endswith(".gz") else open(path)


def _element_z(symbol, unknown):
    symbol = symbol.strip().upper()
    if symbol in ATOMIC_NUMBER:
        return ATOMIC_NUMBER[symbol]
    unknown[symbol] = unknown.get(symbol, 0) + 1
    return 6


def read_pdb(path, chain_prefix=None):
    """Return (xyz [n,3] in A, z [n]) from PDB ATOM/HETATM records of the first model.
    Chain ids may use columns 21-22 (large entries); ``chain_prefix`` keeps matching ones."""
    xyz, zs, unknown = [], [], {}
    with _open_text(path) as fh:
        for line in fh:
            rec = line[:6]
            if rec.startswith("ENDMDL"):
                break
            if rec not in ("ATOM  ", "HETATM") or line[17:20] == "HOH":
                continue
            if line[16] not in (" ", "A"):
                continue
            if chain_prefix and not line[20:22].strip().startswith(chain_prefix):
                continue
            element = line[76:78].strip() or re.sub(r"[^A-Za-z]", "", line[12:16])[:1]
            xyz.append((float(line[30:38]), float(line[38:46]), float(line[46:54])))
            zs.append(_element_z(element, unknown))
    return np.array(xyz), np.array(zs, float), unknown


_CIF_TOKEN = re.compile(r"'(?:[^']|'(?!\s))*'(?=\s|$)|\"(?:[^\"]|\"(?!\s))*\"(?=\s|$)|\S+")


def read_mmcif(path, chain_prefix=None):
    """Return (xyz, z) from the ``_atom_site`` loop of an mmCIF file (first model)."""
    keys, rows, unknown = [], [], {}
    state = "search"
    with _open_text(path) as fh:
        for line in fh:
            s = line.strip()
            if state == "search":
                if s.startswith("_atom_site."):
                    state = "keys"
                    keys.append(s.split()[0][len("_atom_site."):])
            elif state == "keys":
                if s.startswith("_atom_site."):
                    keys.append(s.split()[0][len("_atom_site."):])
                else:
                    state = "rows"
            if state == "rows":
                if not s or s == "#" or s.startswith("_") or s.startswith("loop_"):
                    break
                rows.append(_CIF_TOKEN.findall(s))
    col = {k: i for i, k in enumerate(keys)}
    need = ["type_symbol", "Cartn_x", "Cartn_y", "Cartn_z"]
    missing = [k for k in need if k not in col]
    if missing:
        raise EngineError(f"{path}: the _atom_site loop lacks {missing}")
    model = col.get("pdbx_PDB_model_num")
    alt = col.get("label_alt_id")
    comp = col.get("label_comp_id")
    chain = col.get("auth_asym_id", col.get("label_asym_id"))
    first_model = rows[0][model] if model is not None and rows else None
    xyz, zs = [], []
    for r in rows:
        if model is not None and r[model] != first_model:
            continue
        if alt is not None and r[alt] not in (".", "?", "A"):
            continue
        if comp is not None and r[comp] == "HOH":
            continue
        if chain_prefix and not r[chain].startswith(chain_prefix):
            continue
        xyz.append((float(r[col["Cartn_x"]]), float(r[col["Cartn_y"]]), float(r[col["Cartn_z"]])))
        zs.append(_element_z(r[col["type_symbol"]], unknown))
    return np.array(xyz), np.array(zs, float), unknown


def read_atoms(path, chain_prefix=None):
    name = path[:-3] if path.endswith(".gz") else path
    reader = read_mmcif if name.endswith((".cif", ".mmcif")) else read_pdb
    return reader(path, chain_prefix)


def splat(xyz, weights, voxel_a, fine=4, blur=0.4, margin=3):
    """Density map (Z-sum per reference voxel) with the centre of mass at index n//2.

    Atoms are spread trilinearly on a grid ``fine`` times finer than ``voxel_a``,
    blurred by ``blur`` reference voxels and block-summed ``fine`` x ``fine`` x ``fine``."""
    com = (xyz * weights[:, None]).sum(0) / weights.sum()
    rmax = np.sqrt(((xyz - com) ** 2).sum(1)).max()
    n = 2 * int(np.ceil(rmax / voxel_a)) + 2 * margin
    n += n % 2  # even, so index n//2 is the centre and the COM lands there
    fine_a = voxel_a / fine
    # fine-grid coordinates such that the COM falls on the centre of reference voxel n//2
    origin = com - (n // 2 + 0.5) * voxel_a + 0.5 * fine_a
    pos = (xyz - origin) / fine_a  # [x, y, z] in fine voxels (voxel centres at integers)
    nf = n * fine
    grid = np.zeros(nf ** 3)
    base = np.floor(pos).astype(int)
    frac = pos - base
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = (np.where(dx, frac[:, 0], 1 - frac[:, 0]) * np.where(dy, frac[:, 1], 1 - frac[:, 1])
                     * np.where(dz, frac[:, 2], 1 - frac[:, 2]))
                ix, iy, iz = base[:, 0] + dx, base[:, 1] + dy, base[:, 2] + dz
                flat = (iz * nf + iy) * nf + ix  # array order [z, y, x]
                grid += np.bincount(flat, weights * w, minlength=nf ** 3)
    grid = ndimage.gaussian_filter(grid.reshape(nf, nf, nf), blur * fine, mode="constant")
    return grid.reshape(n, fine, n, fine, n, fine).sum(axis=(1, 3, 5))


def atomic_map(path, voxel_a, blur=0.4, chain_prefix=None):
    """Contrast map (float32, e/A^3 above ice) of an atomic model at ``voxel_a``; returns
    (map, number of atoms, {unknown element: count})."""
    try:
        xyz, zs, unknown = read_atoms(path, chain_prefix)
    except (OSError, ValueError, IndexError, EOFError) as exc:
        raise EngineError(f"cannot read atomic model {path}: {exc}")
    if len(zs) == 0:
        raise EngineError(f"{path} has no atom records (ATOM/HETATM or _atom_site): is it a "
                          "PDB or mmCIF model?")
    zsum = splat(xyz, zs, voxel_a, blur=blur)
    contrast = zsum / voxel_a ** 3 * CONTRAST_PER_ELECTRON
    return contrast.astype(np.float32), len(zs), unknown
