"""Stage 1: rotation-invariant descriptors of every subtomogram (``invariants.py``), PCA
reduced. Not whitened: the weak components are mostly noise and must not weigh as much as
the strong ones."""
import os
import time

import numpy as np

from ... import contract
from ...io.atomic import atomic_path
from ..invariants import invariant_features
from ..pca import fit_pca


def describe(particles, settings, batch_size, seed, log):
    """(N, d) descriptors of ``particles`` with ``settings`` (``settings.Descriptors``)."""
    t0 = time.time()
    x = invariant_features(particles, batch_size=batch_size, angular=settings.angular)
    d = max(2, min(settings.components, x.shape[1], particles.n - 1))
    z = fit_pca(x, d, seed=seed).transform(x).astype(np.float32)
    log(f"rotation-invariant descriptors of {particles.n} subtomograms: {z.shape[1]} components "
        f"({time.time() - t0:.1f}s)")
    return z


def save(iter_dir, z):
    """``iterations/descriptors.npy`` (N x d float32, the restart's): the report embeds them
    beside the network features. Small (d <= 16 by default)."""
    os.makedirs(iter_dir, exist_ok=True)
    with atomic_path(os.path.join(iter_dir, contract.DESCRIPTORS)) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(z, np.float32))
