"""Template-free Difference-of-Gaussians picking (numpy/scipy only).

Public API (stable; see docs/picking.md):

- :func:`pick_tomogram` (volume, voxel_A, particle_diameter_A, ...) -> :class:`PickResult`
- :func:`pick_file` (input MRC, output STAR, particle_diameter_A, ...) -> :class:`PickResult`
- :func:`dog_preview` (volume, voxel_A, particle_diameter_A, z=None, ...) -> :class:`Preview`
- :func:`read_coords` (coords STAR, tomo_name) -> (xyz, scores, rows, name)
- :func:`make_params` (the derived sigmas, distances and border for given settings)

Coordinates are (x, y, z) 0-based voxel centres of the input tomogram; volumes are
numpy arrays indexed [z, y, x].
"""
from .pipeline import (PickParams, PickResult, Preview, make_params, pick_tomogram, dog_preview,
                       to_input_voxels, DEFAULT_SIGMA_RATIO, MIN_DISTANCE_PER_DIAMETER,
                       SIGMA_PER_RADIUS, MIN_SIGMA_VOXELS)
from .files import pick_file, read_coords, coords_table, tomo_name_for, read_pick_stats
from .threshold import DEFAULT_THRESHOLD_SIGMA

__all__ = ["PickParams", "PickResult", "Preview", "make_params", "pick_tomogram", "dog_preview",
           "pick_file", "read_coords", "coords_table", "tomo_name_for", "read_pick_stats", "to_input_voxels",
           "DEFAULT_SIGMA_RATIO", "DEFAULT_THRESHOLD_SIGMA", "MIN_DISTANCE_PER_DIAMETER",
           "SIGMA_PER_RADIUS", "MIN_SIGMA_VOXELS"]
