"""The particle mask: a soft sphere about the box centre, its radius estimated from the data
when not given, and the subtomograms seen through it (cropped to the mask's cube).

Neighbours and membranes reaching into a box otherwise decide part of its class; a mask of
the particle's size keeps them out of every score, average and descriptor. Cropping the box
to the mask also makes the alignment's cost follow the particle's size, not the box's.
"""
import numpy as np

from .fourier import soft_sphere

EDGE = 3.0   # voxels of cosine fall-off outside the particle's radius


def radial_profile(vol):
    """Mean of ``vol`` (s, s, s) on shells of integer radius about the box centre."""
    s = vol.shape[0]
    ax = np.arange(s) - (s - 1) / 2.0
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    r = np.rint(np.sqrt(z * z + y * y + x * x)).astype(int)
    return np.bincount(r.ravel(), vol.ravel()) / np.maximum(np.bincount(r.ravel()), 1)


def estimate_radius(particles, batch_size=256):
    """Particle radius (voxels) from the mean box: the average of centred particles in every
    orientation is a blob, low-passed to 3 voxels; its radial profile falls from the centre's
    plateau to the surroundings' level at the box's edge. The radius is where 90% of that fall
    is done, plus a voxel: 10.4 voxels (250 A) on the 40 real 70S ribosomes, 9.9 on simulated
    80S ribosomes whose r95 is 9.0, 6.4 on rings of r95 4.6. Of particles of several sizes it
    follows their mean blob, smaller than the largest: give the largest diameter then."""
    total, n = None, 0
    for batch in particles.iter_batches(None, batch_size):
        b = np.asarray(batch, np.float64).sum(0)
        total = b if total is None else total + b
        n += len(batch)
    s = total.shape[0]
    f = np.fft.fftfreq(s)
    kz, ky, kx = np.meshgrid(f, f, f, indexing="ij")
    low = np.exp(-(kz ** 2 + ky ** 2 + kx ** 2) * 2 * (np.pi * 3.0 / 2.355) ** 2)
    mean = np.fft.ifftn(np.fft.fftn(total / n) * low).real
    prof = radial_profile(mean)[: s // 2]
    centre, outside = prof[1:3].mean(), prof[-1]
    drop = (prof - outside) / (centre - outside + 1e-12)
    below = np.flatnonzero(drop[1:] < 0.1)
    edge = s // 2 - 1 if not below.size else _crossing(drop, below[0] + 1, 0.1)
    return min(edge + 1.0, s / 2.0 - EDGE - 1)


def _crossing(drop, k, level):
    """Where ``drop`` crosses ``level`` between radius k - 1 and k (linear)."""
    a, b = drop[k - 1], drop[k]
    return (k - 1) + (a - level) / max(a - b, 1e-12)


def centred_size(box, need):
    """At least ``need`` voxels with the box's parity (so the centre voxel stays the
    centre), at most the box."""
    need = int(np.ceil(need))
    return min(box, need + (box - need) % 2)


def centre_crop(batch, box):
    """(B, box, box, box) central cubes of the (B, s, s, s) ``batch``, float32."""
    a = (batch.shape[1] - box) // 2
    c = slice(a, a + box)
    return np.asarray(batch, np.float32)[:, c, c, c]


def crop_size(box, radius):
    """The cube the mask needs about the centre: its outer radius and a voxel."""
    return centred_size(box, 2 * (radius + EDGE) + 2)


class MaskedView:
    """``particles`` seen through a particle mask of ``radius`` voxels: each box cropped to
    ``crop_size`` about its centre and multiplied by the mask. Has the particle set's
    ``n``, ``box`` and ``iter_batches``, so every stage can use it instead."""

    def __init__(self, particles, radius):
        self.particles, self.radius = particles, float(radius)
        self.n = particles.n
        self.box = crop_size(particles.box, self.radius)
        self.mask = soft_sphere(self.box, self.radius + EDGE, EDGE)
        self.voxel_size = getattr(particles, "voxel_size", None)

    def iter_batches(self, indices=None, batch_size=64):
        for batch in self.particles.iter_batches(indices, batch_size):
            yield self.masked(batch)

    def masked(self, batch):
        """(B, box, box, box) full boxes of the particle set, cropped and masked."""
        return centre_crop(batch, self.box) * self.mask

    def record(self):
        """What a model trained on this view needs to see new data the same way."""
        return {"radius_voxels": self.radius, "crop": int(self.box)}


class CentredCrop:
    """``particles`` cropped to a ``box``-voxel cube about the box centre, not masked (the
    stages that use it take the largest sphere of that cube). Has the particle set's ``n``,
    ``box``, ``voxel_size`` and ``iter_batches``."""

    def __init__(self, particles, box):
        self.particles, self.n = particles, particles.n
        self.box = int(box)
        self.voxel_size = getattr(particles, "voxel_size", None)

    def iter_batches(self, indices=None, batch_size=64):
        for batch in self.particles.iter_batches(indices, batch_size):
            yield centre_crop(batch, self.box)
