"""Stage 3: alignment classification. A subtomogram compared with a rotated reference uses
all of its voxels, which descriptors and a briefly trained network do not (ring 7 against
ring 8): every seed cluster gets a reference (its most central member, then the average of
its members aligned to it), then hard-EM rounds assign every subtomogram to the reference
it matches best under the rotations of a near-uniform grid and re-average the references
with the missing wedge compensated (``align.rounds``).

Above ``max_n`` subtomograms the classes are found, and learnt by the network, on a random
subsample of that size (held in memory); the others are classified after (``rest.py``).
"""
import time

import numpy as np

from ...pool import resolve_workers
from ..align import backend as array_backend
from ..align.averages import initial_references
from ..align.rotations import rotation_grid
from ..align.rounds import rounds
from ..align.stack import AlignedStack
from .state import Classes


def subsample(n, settings, seed, log):
    """Sorted indices of the subsample the classes are found on, or None (all of them)."""
    if not settings.max_n or n <= settings.max_n:
        return None
    log(f"classes found and learnt on a random subsample of {settings.max_n} of the {n} "
        f"subtomograms; the others are classified after")
    return np.sort(np.random.default_rng(int(seed)).choice(n, settings.max_n, replace=False))


def aligned_data(particles, settings, threads, indices=None):
    """The ``AlignedStack`` and rotation grid of ``settings`` (``settings.Alignment``);
    ``particles`` seen through the particle mask (``stages.mask``) give their mask to the
    references, plain ones the largest sphere of the box. The scans' array backend is
    ``DISCA_ALIGN_BACKEND``'s (``align.backend``)."""
    stack = AlignedStack(particles, coarse=settings.coarse, indices=indices,
                         coarse_shift=settings.coarse_shift, workers=resolve_workers(threads),
                         mask=getattr(particles, "mask", None),
                         backend=array_backend.select()[0])
    return stack, rotation_grid(settings.rotations)


def refine(particles, seeds, z, settings, min_size, threads, log):
    """The seed clusters ``seeds`` of ``particles`` refined by alignment rounds; returns
    their ``Classes``."""
    t0 = time.time()
    stack, grid = aligned_data(particles, settings, threads)
    refs = initial_references(stack, seeds, z, grid, settings.init_rounds)
    log(f"alignment: {stack.n} subtomograms, {len(refs)} seed references, {len(grid)} rotations, "
        f"wedge {100 * (1 - stack.wedge.mean()):.0f}% of Fourier space, {stack.workers} thread(s), "
        f"scans on {array_backend.select()[1]} ({time.time() - t0:.1f}s)")
    history = []
    fit = rounds(stack, refs, grid, seeds, min_size, settings.rounds, log, history,
                 disattenuate=settings.disattenuate)
    return Classes.of_fit(stack, grid, fit, history)
