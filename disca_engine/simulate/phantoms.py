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


# ---- more phantoms (the accuracy benchmark's template library; docs/simulator.md) ----
def ring7():
    """Heptameric ring of single globules (~140 x 45 A, ~0.3 MDa)."""
    return _ring(7, 48.0, 0.0, 21.0)


def ring8():
    """Octameric ring of two-lobed subunits (~150 x 70 A, ~0.45 MDa): close to ``ring``."""
    return _ring(8, 52.0, -12.0, 19.0) + _ring(8, 46.0, 14.0, 15.0, phase=np.pi / 8)


def barrel3():
    """Three stacked hexameric rings (~130 x 110 A, ~0.7 MDa): a shorter ``barrel``."""
    spheres = []
    for i, z in enumerate((-38.0, 0.0, 38.0)):
        spheres += _ring(6, 38.0, z, 21.0, phase=(np.pi / 6) * (i % 2))
    return spheres


def cage12():
    """Hollow cage of 12 subunits at the vertices of an icosahedron (~140 A, ~0.4 MDa)."""
    g = (1 + 5 ** 0.5) / 2
    pts = []
    for a, b in itertools.product((1, -1), repeat=2):
        pts += [(0, a, b * g), (a, b * g, 0), (b * g, 0, a)]
    pts = np.array(pts, float)
    pts = 50.0 * pts / np.linalg.norm(pts, axis=1, keepdims=True)
    return [(tuple(p), 20.0) for p in pts]


def propeller():
    """Flat seven-bladed propeller with a hub (~150 x 40 A, ~0.35 MDa)."""
    blades = _ring(7, 50.0, 0.0, 17.0) + _ring(7, 28.0, 0.0, 15.0, phase=0.25)
    return blades + [((0.0, 0.0, 0.0), 14.0)]


def lshape():
    """Two arms of three globules meeting at a right angle (~180 A, ~0.35 MDa)."""
    arm = [((22.0 * i, 0.0, 0.0), 20.0) for i in range(4)]
    return arm + [((0.0, 22.0 * i, 0.0), 20.0) for i in range(1, 4)]


def dimer():
    """Two equal globules side by side (~130 A, ~0.3 MDa): symmetric ``dumbbell`` cousin."""
    return [((-32.0, 0.0, 0.0), 30.0), ((32.0, 0.0, 0.0), 30.0)]


def helix12():
    """Longer helical filament: 12 subunits, rise 20 A, twist 60 deg (~260 x 80 A)."""
    spheres = []
    for i in range(12):
        a = np.deg2rad(60.0) * i
        spheres.append(((20.0 * np.cos(a), 20.0 * np.sin(a), 20.0 * (i - 5.5)), 19.0))
    return spheres


def triskelion():
    """Three bent arms from a hub, threefold symmetric, flat (~200 A, ~0.4 MDa)."""
    spheres = [((0.0, 0.0, 0.0), 22.0)]
    for a in 2 * np.pi * np.arange(3) / 3:
        d, e = np.array([np.cos(a), np.sin(a), 0.0]), np.array([-np.sin(a), np.cos(a), 0.0])
        spheres += [(tuple(40.0 * d), 18.0), (tuple(72.0 * d + 14.0 * e + (0, 0, 10)), 17.0),
                    (tuple(96.0 * d + 34.0 * e + (0, 0, 18)), 16.0)]
    return spheres


def cube8():
    """Eight globules at the corners of a cube (~140 A, ~0.5 MDa): a compact cage."""
    return [(tuple(34.0 * np.array(s)), 24.0) for s in itertools.product((1, -1), repeat=3)]


def yshape():
    """Antibody-like Y: two arms and a stem of two domains each (~170 A, ~0.3 MDa)."""
    spheres = []
    for d in ((0.0, 0.0, -1.0), (0.8, 0.0, 0.6), (-0.8, 0.0, 0.6)):
        d = np.array(d) / np.linalg.norm(d)
        spheres += [(tuple(26.0 * d), 18.0), (tuple(60.0 * d), 18.0)]
    return spheres


def disc():
    """Flat disc: a hexagonal sheet of 19 small globules (~160 x 30 A, ~0.35 MDa)."""
    pts = [(0.0, 0.0)]
    for ring_i, n in ((1, 6), (2, 12)):
        pts += [(ring_i * 30.0 * np.cos(a), ring_i * 30.0 * np.sin(a))
                for a in 2 * np.pi * (np.arange(n) + 0.5 * (ring_i - 1)) / n]
    return [((x, y, 0.0), 16.0) for x, y in pts]


def trimer():
    """Three globules in a triangle plus a cap on the axis (~120 A, ~0.3 MDa)."""
    return _ring(3, 34.0, 0.0, 26.0) + [((0.0, 0.0, 34.0), 20.0)]


PHANTOMS.update({f.__name__: f for f in (ring7, ring8, barrel3, cage12, propeller, lshape, dimer,
                                          helix12, triskelion, cube8, yshape, disc, trimer)})


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
