"""Which simulated structure each pick found: picks matched to ``truth.star`` of
``simulate_tomograms`` (the demo's confusion table and the picked tuning cells)."""
import numpy as np

from .. import contract

JUNK = "junk"
# truth columns of the tilt-series subtomograms, besides contract.TRUE_CLASS(_NAME)
TRUE_DEFOCUS = "discaTrueDefocusUm"        # the particle's underfocus (um)
TRUE_NEIGHBOURS = "discaTrueNeighbours"    # neighbours whose 95%-mass sphere reaches the box
TRUE_MEMBRANE = "discaTrueMembrane"        # 1 if a membrane crosses the box
TRUE_GOLD = "discaTrueGold"                # 1 if the scene holds a gold bead
_AXES = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")


def coordinates(table):
    """(N, 3) x, y, z of a STAR table's rows, in voxels."""
    return np.array([table.column(a, float) for a in _AXES]).T.reshape(-1, 3)


def names_of_picks(tomos, xyz, truth, radius=5.0):
    """(N,) object array: for each pick (its tomogram name and x, y, z in voxels), the name of
    the nearest true particle of the same tomogram in ``truth`` (the StarTable of truth.star)
    within ``radius`` voxels, else ``JUNK`` (a pick of gold, membrane, empty ice or an edge)."""
    from scipy.spatial import cKDTree
    t_tomo = np.array(truth.column("rlnTomoName"))
    t_xyz = coordinates(truth)
    t_name = np.array(truth.column(contract.TRUE_CLASS_NAME))
    tomos, xyz = np.asarray(tomos), np.asarray(xyz, np.float64).reshape(-1, 3)
    found = np.array([JUNK] * len(tomos), dtype=object)
    for tomo in np.unique(tomos):
        sel, tsel = np.flatnonzero(tomos == tomo), np.flatnonzero(t_tomo == tomo)
        if not tsel.size:
            continue
        d, j = cKDTree(t_xyz[tsel]).query(xyz[sel])
        near = d <= radius
        found[sel[near]] = t_name[tsel[j[near]]]
    return found
