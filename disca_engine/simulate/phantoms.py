"""Procedural phantoms: assemblies of spherical 'subunits' with protein-like density.

Each phantom is a list of spheres (centre in A, radius in A) built from simple
geometric rules (rings, stacks, helices, cages) so the classes have controlled size,
symmetry and shape. ``render`` draws the union of the spheres with a soft edge,
supersampled and block-averaged to the requested voxel size, in the same contrast units
as the atomic templates (``templates.PROTEIN_CONTRAST``); ``scripts/build_templates.py``
stores them as maps at the reference voxel size.
"""
import itertools

import numpy as np

PROTEIN_CONTRAST = 0.096  # e/A^3 above vitreous ice inside protein (see templates.py)


def _ring(n, radius, z, r_sub, phase=0.0):
    ang = phase + 2 * np.pi * np.arange(n) / n
    return [((radius * np.cos(a), radius * np.sin(a), z), r_sub) for a in ang]


def barrel():
    """Four stacked heptameric rings (a 20S-proteasome-like barrel, ~150 x 125 A, ~1 MDa)."""
    spheres = []
    for i, z in enumerate((-57.0, -19.0, 19.0, 57.0)):
        spheres += _ring(7, 40.0, z, 22.0, phase=(np.pi / 7) * (i % 2))
    return spheres


def ring():
    """One hexameric ring of two-lobed subunits (AAA+-ATPase-like, ~130 x 70 A, ~0.3 MDa)."""
    return _ring(6, 42.0, -10.0, 22.0) + _ring(6, 36.0, 22.0, 16.0, phase=np.pi / 6)


def shell():
    """Hollow cage of 24 subunits: the orbit of one point under the 24 rotations of the
    cube (octahedral symmetry, ferritin-like, ~150 A across, ~0.45 MDa)."""
    pts = []
    v = np.array([1.0, 0.45, 0.2])
    for perm in itertools.permutations(range(3)):
        parity = np.linalg.det(np.eye(3)[list(perm)])
        for signs in itertools.product((1, -1), repeat=3):
            if np.prod(signs) == parity:  # signed permutation with det +1 = a rotation
                pts.append(v[list(perm)] * np.array(signs))
    pts = np.array(pts)
    pts = 56.0 * pts / np.linalg.norm(pts, axis=1, keepdims=True)
    return [(tuple(p), 19.0) for p in pts]


def rod():
    """Piece of an actin-like helical filament: 9 subunits, rise 27.5 A, twist -166.7 deg
    (~250 x 90 A, ~0.4 MDa)."""
    spheres = []
    for i in range(9):
        a = np.deg2rad(-166.7) * i
        z = 27.5 * (i - 4)
        spheres.append(((22.0 * np.cos(a), 22.0 * np.sin(a), z), 24.0))
    return spheres


def globule():
    """Small three-domain globular protein (~75 A, ~0.1 MDa)."""
    return [((0.0, 0.0, 0.0), 24.0), ((27.0, 8.0, 4.0), 18.0), ((-6.0, 25.0, -10.0), 16.0)]


def dumbbell():
    """Two unequal lobes joined by a neck (~190 A long, ~0.35 MDa): strongly asymmetric."""
    return [((0.0, 0.0, -48.0), 36.0), ((0.0, 0.0, 2.0), 14.0), ((0.0, 0.0, 50.0), 29.0)]


def blobs():
    """Fixed random compact assembly of 22 globules (~160 A, ~0.8 MDa), no symmetry."""
    rng = np.random.default_rng(7)
    spheres = []
    while len(spheres) < 22:
        r = rng.uniform(17.0, 26.0)
        c = rng.uniform(-52.0, 52.0, size=3)
        if np.linalg.norm(c) > 52.0:
            continue  # centres uniform in a ball: compact, roughly spherical envelope
        if all(np.linalg.norm(c - np.array(c0)) > 0.75 * (r + r0) for c0, r0 in spheres):
            spheres.append((tuple(c), r))
    return spheres


def tetra():
    """Core with four two-domain arms along tetrahedral directions (~200 A, ~0.45 MDa)."""
    dirs = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
    spheres = [((0.0, 0.0, 0.0), 34.0)]
    for d in dirs:
        spheres += [(tuple(50.0 * d), 25.0), (tuple(84.0 * d), 20.0)]
    return spheres


PHANTOMS = {"barrel": barrel, "ring": ring, "shell": shell, "rod": rod, "globule": globule,
            "dumbbell": dumbbell, "blobs": blobs, "tetra": tetra}


def render(name, voxel_a, supersample=4, edge_a=2.0, margin=3):
    """Density map [z, y, x] (float32) of phantom ``name`` centred at index n//2."""
    spheres = PHANTOMS[name]()
    centres = np.array([c for c, _ in spheres], float)
    radii = np.array([r for _, r in spheres], float)
    # centre on the centre of mass (sphere volumes as weights)
    centres -= (centres * radii[:, None] ** 3).sum(0) / (radii ** 3).sum()
    extent = (np.linalg.norm(centres, axis=1) + radii).max() + 2 * edge_a
    n = 2 * int(np.ceil(extent / voxel_a)) + 2 * margin
    n += n % 2
    fine = voxel_a / supersample
    # fine-sample coordinates (A) so that reference voxel n//2 is centred at the origin
    ax = (np.arange(n * supersample) - (n // 2) * supersample - (supersample - 1) / 2) * fine
    occ = np.zeros((ax.size,) * 3, np.float32)
    for (cx, cy, cz), r in zip(centres, radii):
        # only the sub-box where this sphere's soft edge is above ~1e-7
        reach = r + 8 * edge_a
        sl = [slice(*np.searchsorted(ax, [c - reach, c + reach])) for c in (cz, cy, cx)]
        z, y, x = ax[sl[0]][:, None, None], ax[sl[1]][None, :, None], ax[sl[2]][None, None, :]
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
        sub = occ[sl[0], sl[1], sl[2]]
        np.maximum(sub, 0.5 * (1.0 - np.tanh((d - r) / edge_a)), out=sub)
    s = supersample
    vol = occ.reshape(n, s, n, s, n, s).mean(axis=(1, 3, 5)) * PROTEIN_CONTRAST
    return vol.astype(np.float32)
