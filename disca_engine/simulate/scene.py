"""Crowded scenes around one subtomogram box, for the tilt-series simulator.

A scene is a cube of side ``scene_side(...)`` voxels centred on the box centre (the pick). It
holds the central particle (or nothing, for a junk box), neighbours whose 95%-mass sphere
(radius r95) overlaps the box ("reaching" it: they show partly inside), background particles
further out at the same number density (they leave only streaks in the box), optionally a
membrane through the box and a gold bead near it. Coordinates are [z, y, x] voxels from the
box centre. The membrane is the lipid-bilayer profile of ``specimen.membrane_profile`` on a
sphere of large radius (gently curved to nearly planar), faded out over the scene's outer
voxels so its cut edge leaves no sharp line in the projections.
"""
import numpy as np

from ..errors import EngineError
from . import geometry
from .specimen import GOLD_RADIUS_A, HEAD_OFFSET_A, HEAD_SIGMA_A, membrane_profile, paste, paste_gold

MEMBRANE_HALF_A = HEAD_OFFSET_A + 2 * HEAD_SIGMA_A    # half-thickness kept clear of particles
CURVATURE_NM = (40.0, 400.0)     # membrane radius of curvature, log-uniform: vesicle to flat
TAPER_VOXELS = 6                 # the membrane fades out over this many voxels at the faces
TRIES = 8192


def scene_side(size, temps):
    """Side of the scene cube: a reaching neighbour (centre within r95 of the box) must fit
    inside it whole (its farthest drawn voxel, rfull, from its centre)."""
    reach = max(t.r95 for t in temps) + max(t.rfull for t in temps)
    return int(2 * np.ceil(size / 2 + reach + 1))


def reach_volume(size, r):
    """Volume (voxels^3) of the centres whose r-sphere overlaps a cube of side ``size``
    (the cube grown by r: Steiner's formula)."""
    s = float(size)
    return s ** 3 + 6 * s * s * r + 3 * np.pi * s * r * r + 4 / 3 * np.pi * r ** 3


def distance_to_box(c, size):
    """Euclidean distance of points ``c`` (m, 3) from the box cube (0 inside)."""
    half = size / 2.0
    return np.linalg.norm(np.maximum(np.abs(c) - half, 0.0), axis=1)


class Membrane:
    """A bilayer on a sphere of ``radius`` voxels centred at ``centre`` (from the box centre)."""

    def __init__(self, centre, radius):
        self.centre = np.asarray(centre, float)
        self.radius = float(radius)

    def distance(self, p):
        """Signed distance (voxels) of points p (m, 3) from the mid-surface."""
        return np.linalg.norm(np.asarray(p, float) - self.centre, axis=-1) - self.radius


def random_membrane(rng, size, voxel_a, clear_r, through_centre=False):
    """A membrane crossing the box with a random normal and offset, at least ``clear_r``
    voxels (plus its half-thickness) from the box centre unless ``through_centre``."""
    normal = rng.standard_normal(3)
    normal /= np.linalg.norm(normal)
    radius = np.exp(rng.uniform(*np.log(CURVATURE_NM))) * 10.0 / voxel_a
    half = size / 2.0
    d_max = 0.9 * half * np.abs(normal).sum()        # still inside the box along the normal
    if through_centre:
        offset = rng.uniform(0.0, 2.0)
    else:
        d_min = clear_r + MEMBRANE_HALF_A / voxel_a + 1.0
        offset = rng.uniform(d_min, d_max) if d_min < d_max else d_max
    # the box centre lies outside or inside the sphere, at ``offset`` from its surface
    centre = normal * (radius + offset) if rng.random() < 0.5 else -normal * (radius - offset)
    return Membrane(centre, radius)


class Scene:
    """Bodies (template index, rotation, centre) around one box, plus membrane and gold."""

    def __init__(self, side, voxel_a):
        self.side = side
        self.voxel_a = voxel_a
        self.bodies = []          # (template index, rotation xyz, centre [z, y, x])
        self.roles = []           # "particle" (the box's own), "neighbour" or "background"
        self.radii = []           # outer radius (rmax) of each body, for spacing
        self.n_reaching = 0
        self.n_background = 0
        self.membrane = None
        self.gold = []

    def _clear(self, cand, r):
        ok = np.ones(len(cand), bool)
        for (_, _, c), rr in zip(self.bodies, self.radii):
            ok &= np.linalg.norm(cand - c, axis=1) >= r + rr + 1.0
        for g in self.gold:
            ok &= np.linalg.norm(cand - g, axis=1) >= r + GOLD_RADIUS_A / self.voxel_a + 1.0
        if self.membrane is not None:
            ok &= np.abs(self.membrane.distance(cand)) >= r + MEMBRANE_HALF_A / self.voxel_a
        return ok

    def free_point(self, rng, r, rfull, size, reach):
        """A centre for a body of outer radius r that is clear of everything, whole inside the
        scene, and whose r95 sphere reaches the box (``reach`` > 0) or not (``reach`` < 0)."""
        lim = self.side / 2.0 - 1.0 - rfull
        if lim <= 0:
            return None
        for _ in range(TRIES // 256):
            cand = rng.uniform(-lim, lim, size=(256, 3))
            d = distance_to_box(cand, size)
            ok = (d < reach) if reach > 0 else (d >= -reach)
            ok &= self._clear(cand, r)
            hits = np.flatnonzero(ok)
            if hits.size:
                return cand[hits[0]]
        return None

    def add(self, index, rotation, centre, radius, role):
        self.bodies.append((int(index), np.asarray(rotation), np.asarray(centre, float)))
        self.radii.append(float(radius))
        self.roles.append(role)
        self.n_reaching += role == "neighbour"
        self.n_background += role == "background"

    def render(self, temps):
        """The density (side^3 float32) of everything but the box's own particle."""
        vol = np.zeros((self.side,) * 3, np.float32)
        mid = np.full(3, self.side // 2, float)
        for (i, rot, c), role in zip(self.bodies, self.roles):
            if role != "particle":
                paste(vol, temps[i], rot, c + mid)
        for g in self.gold:
            paste_gold(vol, g + mid, self.voxel_a)
        if self.membrane is not None:
            self._render_membrane(vol)
        return vol

    def _render_membrane(self, vol):
        ax = np.arange(self.side) - self.side // 2
        p = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
        d_a = self.membrane.distance(p) * self.voxel_a
        near = np.flatnonzero(np.abs(d_a) < HEAD_OFFSET_A + 4 * HEAD_SIGMA_A + self.voxel_a)
        edge = np.arange(self.side, dtype=float)
        ramp = np.clip(np.minimum(edge, self.side - 1 - edge) / TAPER_VOXELS, 0.0, 1.0)
        ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
        idx = np.unravel_index(near, vol.shape)
        taper = ramp[idx[0]] * ramp[idx[1]] * ramp[idx[2]]
        vol[idx] += (membrane_profile(d_a[near], self.voxel_a) * taper).astype(np.float32)


def build_scene(rng, size, voxel_a, temps, central, n_reaching, pool, density, membrane,
                gold, junk_kind=None):
    """Plan one box's scene. ``central``: (template index, rotation, shift) or None (junk);
    ``pool``: template indices neighbours are drawn from; ``density``: background particles
    per voxel^3; ``membrane``/``gold``: whether the box gets one; ``junk_kind`` one of
    junk.KINDS for a box without a particle (a gold box's bead and a membrane box's bilayer
    pass through its centre)."""
    scene = Scene(scene_side(size, temps), voxel_a)
    clear_r = 0.0
    if central is not None:
        i, rot, shift = central
        scene.add(i, rot, shift, temps[i].rmax, "particle")
        clear_r = temps[i].r95 + float(np.abs(shift).max())
    if membrane or junk_kind == "membrane":
        scene.membrane = random_membrane(rng, size, voxel_a, clear_r, junk_kind == "membrane")
    if gold or junk_kind == "gold":
        g_r = GOLD_RADIUS_A / voxel_a
        c = rng.uniform(-2, 2, 3) if junk_kind == "gold" else scene.free_point(rng, g_r, g_r, size, g_r + 2)
        if c is None:
            raise EngineError(f"no room for a gold bead next to a {size}-voxel box: use a larger "
                              "--size or lower --neighbours")
        scene.gold.append(c)
    for _ in range(n_reaching):
        j = int(pool[rng.integers(len(pool))])
        c = scene.free_point(rng, temps[j].rmax, temps[j].rfull, size, temps[j].r95)
        if c is None:
            raise EngineError(
                f"cannot fit {n_reaching} neighbours reaching a {size}-voxel box without overlap "
                f"(placed {scene.n_reaching}): lower --neighbours or use a larger --size")
        scene.add(j, geometry.random_rotations(rng, 1)[0], c, temps[j].rmax, "neighbour")
    _add_background(rng, scene, size, temps, pool, density)
    return scene


def _add_background(rng, scene, size, temps, pool, density):
    """Particles that do not reach the box, Poisson in number at ``density`` over the scene
    volume outside the reach region; placement stops at the first that finds no room (the
    number placed is in ``scene.n_background``)."""
    r95 = np.mean([temps[j].r95 for j in pool])
    space = max(scene.side ** 3 - reach_volume(size, r95), 0.0)
    for _ in range(rng.poisson(density * space)):
        j = int(pool[rng.integers(len(pool))])
        c = scene.free_point(rng, temps[j].rmax, temps[j].rfull, size, -temps[j].r95)
        if c is None:
            break
        scene.add(j, geometry.random_rotations(rng, 1)[0], c, temps[j].rmax, "background")
