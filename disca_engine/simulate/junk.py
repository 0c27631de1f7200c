"""Junk boxes for the simulator: what DoG picking also returns besides particles.

Three kinds, in turn: an empty box (ice and noise only), a gold bead (a small sphere about
20x denser than protein: dominates its box after the CTF), and a membrane patch (a lipid
bilayer sheet of two leaflets crossing the box with a random normal, offset and a gentle
curvature). Densities are in the templates' contrast units (protein about +0.096), so the
same CTF, wedge and noise are applied as to the particles.
"""
import numpy as np

from .phantoms import PROTEIN_CONTRAST

KINDS = ("empty", "gold", "membrane")


def render(kind, size, voxel_a, rng):
    """Density (size^3 float32, [z, y, x]) of one junk box of ``kind``."""
    c = size // 2
    ax = (np.arange(size) - c).astype(np.float64)
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    if kind == "empty":
        return np.zeros((size,) * 3, np.float32)
    if kind == "gold":
        radius = rng.uniform(25.0, 50.0) / voxel_a         # 5-10 nm beads
        shift = rng.uniform(-2, 2, 3)
        d = np.sqrt((z - shift[0]) ** 2 + (y - shift[1]) ** 2 + (x - shift[2]) ** 2)
        return (20 * PROTEIN_CONTRAST * 0.5 * (1 - np.tanh((d - radius) / 0.5))).astype(np.float32)
    if kind == "membrane":
        normal = rng.standard_normal(3)
        normal /= np.linalg.norm(normal)
        curvature_radius = rng.uniform(30.0, 80.0)          # voxels: vesicles of 80-220 nm
        centre = -normal * (curvature_radius + rng.uniform(-3, 3))
        d = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) - curvature_radius
        leaflet = 20.0 / voxel_a                             # head groups ~2 nm either side
        width = 6.0 / voxel_a
        sheet = np.exp(-0.5 * ((d - leaflet) / width) ** 2) + np.exp(-0.5 * ((d + leaflet) / width) ** 2)
        return (PROTEIN_CONTRAST * sheet).astype(np.float32)
    raise ValueError(f"unknown junk kind {kind}")
