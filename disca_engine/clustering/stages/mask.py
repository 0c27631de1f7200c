"""Stage 0: the particle mask. Every later stage of the classification sees the boxes
through a soft sphere of the particle's size (``align.mask``): neighbours, membranes and
gold reaching into a box stop deciding its class, and the boxes are cropped to the mask's
cube, so the cost follows the particle's size rather than the box's."""
from ...errors import EngineError
from ..align.mask import EDGE, MaskedView, estimate_radius


def apply(particles, settings, log):
    """``particles`` seen through the mask of ``settings`` (``settings.ParticleMask``)."""
    voxel = particles.voxel_size
    largest = particles.box / 2.0 - EDGE - 1
    if settings.diameter_A is None:
        radius, how = estimate_radius(particles), "estimated from the data's mean box; give " \
            "--particle-diameter-A (the largest particle's) to set it"
    else:
        if not voxel:
            raise EngineError(f"--particle-diameter-A {settings.diameter_A:g}: the subtomograms' "
                              "voxel size is unknown (no pixel size in their MRC headers); "
                              "leave the diameter out to estimate it in voxels")
        radius, how = settings.diameter_A / 2.0 / voxel, "given"
        if radius < 2:
            raise EngineError(f"--particle-diameter-A {settings.diameter_A:g}: under 4 voxels of "
                              f"{voxel:g} A; give the particle's diameter in A")
        if radius > largest:
            radius, how = largest, f"given {settings.diameter_A:g} A, capped at what the box holds"
    view = MaskedView(particles, radius)
    size = f" ({2 * radius * voxel:.0f} A)" if voxel else ""
    log(f"particle mask: diameter {2 * radius:.1f} voxels{size}, {how}; boxes cropped to "
        f"{view.box}^3 for the classification")
    return view


def record(view):
    """What the report says of the mask."""
    voxel = view.voxel_size
    return {"mask": True, "diameter_voxels": round(2 * view.radius, 2),
            "diameter_A": round(2 * view.radius * voxel, 1) if voxel else None,
            "crop": int(view.box)}
