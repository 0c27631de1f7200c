"""DoG picking of one tomogram: parameters, the pick itself and a one-slice preview."""
import dataclasses
import math
import os
import time
from typing import NamedTuple

import numpy as np

from ..errors import EngineError
from . import dog as _dog
from .peaks import local_maxima, suppress
from .threshold import background_stats, choose_threshold, DEFAULT_THRESHOLD_SIGMA
from .volume import make_source

# sigma1 = radius / sqrt(3): the scale at which a (scale-normalised) DoG/LoG answers most
# strongly at the centre of a solid sphere of that radius (3D blob-detection scale).
SIGMA_PER_RADIUS = 1.0 / math.sqrt(3.0)
MIN_SIGMA_VOXELS = 2.0        # [ref] below ~2 voxels the DoG follows the noise
DEFAULT_SIGMA_RATIO = 1.1     # [ref] sigma2 = 1.1 sigma1
MIN_DISTANCE_PER_DIAMETER = 0.8  # touching particles (centres 1 diameter apart) both survive
CONTRASTS = ("dark", "bright")


@dataclasses.dataclass
class PickParams:
    """Every setting of a pick, in Angstrom and in (binned) picking voxels."""
    voxel_A: float
    particle_diameter_A: float
    bin: int
    sigma1_vox: float
    sigma2_vox: float
    min_distance_vox: float
    border_vox: int
    contrast: str
    max_picks: object
    threshold_sigma: object

    @property
    def picking_voxel_A(self):
        return self.voxel_A * self.bin

    def as_dict(self):
        d = dataclasses.asdict(self)
        d["sigma1_A"] = self.sigma1_vox * self.picking_voxel_A
        d["sigma2_A"] = self.sigma2_vox * self.picking_voxel_A
        d["min_distance_A"] = self.min_distance_vox * self.picking_voxel_A
        d["border_A"] = self.border_vox * self.picking_voxel_A
        return d


@dataclasses.dataclass
class PickResult:
    """Picks sorted by score (highest first).

    ``xyz``: float N x 3 (x, y, z) in voxels of the INPUT tomogram, 0-based voxel centres.
    ``scores``: DoG response at the peak (positive = particle-like for the chosen contrast).
    ``threshold``: the absolute threshold used (same units as ``scores``).
    ``background_median`` / ``background_sigma``: robust statistics of the DoG response,
    so ``(scores - median) / sigma`` is a noise-relative score comparable across tomograms.
    """
    xyz: np.ndarray
    scores: np.ndarray
    threshold: float
    background_median: float
    background_sigma: float
    params: PickParams
    n_candidates: int = 0
    shape: tuple = ()
    seconds: dict = dataclasses.field(default_factory=dict)
    threshold_mode: str = "auto"  # "auto" (median + k robust sigma) or "absolute" (given)

    def __len__(self):
        return len(self.scores)

    @property
    def zscores(self):
        s = self.background_sigma if self.background_sigma > 0 else 1.0
        return (self.scores - self.background_median) / s


def smallest_resolved_diameter_vox():
    """Particles narrower than this (picking voxels) get the DoG width held at
    MIN_SIGMA_VOXELS, wider than their own best scale: they are picked less well."""
    return 2.0 * MIN_SIGMA_VOXELS / SIGMA_PER_RADIUS


def make_params(voxel_A, particle_diameter_A, sigma_ratio=DEFAULT_SIGMA_RATIO, min_distance_A=None,
                max_picks=None, contrast="dark", border_A=None, bin=1, threshold_sigma=None):
    if voxel_A is None or not voxel_A > 0:
        raise EngineError("voxel size unknown: the MRC header has none; give it with --voxel-A")
    if particle_diameter_A is None or not particle_diameter_A > 0:
        raise EngineError("particle diameter must be > 0 Angstrom (--particle-diameter-A)")
    if not sigma_ratio > 1.0:
        raise EngineError(f"sigma ratio must be > 1 (sigma2 = ratio * sigma1), got {sigma_ratio}")
    if contrast not in CONTRASTS:
        raise EngineError(f"contrast must be 'dark' or 'bright', got {contrast!r}")
    if max_picks is not None and int(max_picks) < 1:
        raise EngineError(f"max picks must be >= 1 (or unset for no cap), got {max_picks}")
    bin = int(bin)
    if bin < 1:
        raise EngineError(f"bin must be a positive integer, got {bin}")
    pix = voxel_A * bin
    radius = particle_diameter_A / 2.0 / pix
    sigma1 = max(MIN_SIGMA_VOXELS, SIGMA_PER_RADIUS * radius)
    min_d = (MIN_DISTANCE_PER_DIAMETER * particle_diameter_A if min_distance_A is None
             else float(min_distance_A)) / pix
    border = (particle_diameter_A / 2.0 if border_A is None else float(border_A)) / pix
    if min_d < 0 or border < 0:
        raise EngineError("minimum distance and border must be >= 0 Angstrom")
    return PickParams(voxel_A=float(voxel_A), particle_diameter_A=float(particle_diameter_A), bin=bin,
                      sigma1_vox=float(sigma1), sigma2_vox=float(sigma1 * sigma_ratio),
                      min_distance_vox=float(min_d), border_vox=max(1, int(math.ceil(border))),
                      contrast=contrast, max_picks=None if max_picks is None else int(max_picks),
                      threshold_sigma=threshold_sigma)


def _mask_array(mask, shape):
    if mask is None:
        return None
    if isinstance(mask, (str, os.PathLike)):
        from ..io.mrc import read_volume
        mask = read_volume(os.fspath(mask), mmap=True)
    mask = np.asarray(mask) if not isinstance(mask, np.memmap) else mask
    if tuple(mask.shape) != tuple(shape):
        raise EngineError(f"mask shape {tuple(mask.shape)} (z, y, x) differs from the tomogram's "
                          f"{tuple(shape)}: give a mask made for this tomogram")
    return mask


def _mask_fn(mask, b):
    if mask is None:
        return None
    c = b // 2  # input voxel nearest to the binned voxel's centre

    def inside(gz, gy, gx):
        return np.asarray(mask[np.ix_(gz * b + c, gy * b + c, gx * b + c)]) > 0.5
    return inside


def to_input_voxels(zyx, b):
    """Binned voxel indices (z, y, x) -> input-voxel centres (x, y, z): j*b + (b-1)/2."""
    zyx = np.asarray(zyx, dtype=np.float64)
    return zyx[:, ::-1] * b + (b - 1) / 2.0


def _select(zyx, vals, params, mask, dog_shape_z_offset=0):
    """Mask filter, suppression and cap; returns kept (zyx, vals) sorted by score."""
    b = params.bin
    zyx = zyx + np.array([dog_shape_z_offset, 0, 0])
    if mask is not None and len(vals):
        c = b // 2
        inside = np.asarray(mask[zyx[:, 0] * b + c, zyx[:, 1] * b + c, zyx[:, 2] * b + c]) > 0.5
        zyx, vals = zyx[inside], vals[inside]
    keep = suppress(zyx, vals, params.min_distance_vox)
    if params.max_picks is not None:
        keep = keep[:params.max_picks]
    return zyx[keep], vals[keep]


def pick_tomogram(volume, voxel_A, particle_diameter_A, sigma_ratio=DEFAULT_SIGMA_RATIO, threshold=None,
                  min_distance_A=None, max_picks=None, contrast="dark", border_A=None, bin=1, mask=None,
                  threshold_sigma=None, workers=None, progress=None):
    """DoG-pick one tomogram (array [z, y, x], memory map, MRC path, or slab source).

    Returns a :class:`PickResult`; coordinates are in voxels of the input tomogram.
    """
    params = make_params(voxel_A, particle_diameter_A, sigma_ratio, min_distance_A, max_picks,
                         contrast, border_A, bin, threshold_sigma)
    src = make_source(volume, params.bin)
    full_shape = src.source.shape if params.bin > 1 else src.shape
    mask = _mask_array(mask, full_shape)
    sign = -1.0 if contrast == "dark" else 1.0
    t = {}
    t0 = time.perf_counter()
    dog = _dog.dog_volume(src, params.sigma1_vox, params.sigma2_vox, sign, workers=workers,
                          progress=progress)
    t["dog"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    border = (params.border_vox,) * 3
    med, sig = background_stats(dog, border, _mask_fn(mask, params.bin))
    thr = choose_threshold(med, sig, threshold, threshold_sigma)
    t["threshold"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    zyx, vals = local_maxima(dog, thr, border)
    t["peaks"] = time.perf_counter() - t0
    del dog
    t0 = time.perf_counter()
    n_cand = len(vals)
    zyx, vals = _select(zyx, vals, params, mask)
    t["suppress"] = time.perf_counter() - t0
    return PickResult(xyz=to_input_voxels(zyx, params.bin), scores=vals.astype(np.float32),
                      threshold=float(thr), background_median=med, background_sigma=sig,
                      params=params, n_candidates=n_cand, shape=tuple(full_shape), seconds=t,
                      threshold_mode="auto" if threshold is None else "absolute")


class Preview(NamedTuple):
    """What a GUI wizard needs to show picks on one slice (unpacks as a 5-tuple)."""
    tomogram_slice: np.ndarray   # binned tomogram plane [y, x]
    dog_slice: np.ndarray        # DoG response on that plane (particles positive)
    picks: PickResult            # picks whose centre lies within a radius of the plane
    threshold: float
    histogram: tuple             # (counts, bin_edges) of local-maximum scores above the median;
                                 # a last, wider bin holds the outliers beyond the bulk


def _robust_histogram(values, bins):
    """Histogram with ``bins`` even bins over the bulk (up to Tukey's far fence, Q3 + 3 IQR)
    and, when some values lie beyond, one last wider bin holding them all: a few gold beads
    100x the background then do not squash the bins the threshold is judged on."""
    if not len(values):
        return np.zeros(bins, int), np.zeros(bins + 1)
    q1, q3 = np.percentile(values, [25, 75])
    top = float(values.max())
    hi = min(top, q3 + 3.0 * (q3 - q1)) if q3 > q1 else top
    edges = np.histogram_bin_edges(values, bins=bins, range=(float(values.min()), hi))
    if top > hi:
        edges = np.append(edges, top)
    counts, edges = np.histogram(values, bins=edges)
    return counts, edges


def dog_preview(volume, voxel_A, particle_diameter_A, z=None, sigma_ratio=DEFAULT_SIGMA_RATIO,
                threshold=None, min_distance_A=None, contrast="dark", border_A=None, bin=1,
                mask=None, threshold_sigma=None, workers=None, bins=50):
    """Pick in a slab around input-voxel plane ``z`` (default: the middle) only.

    Fast on big tomograms: it reads about 2 x (radius + 4 sigma2) planes. The automatic
    threshold comes from the slab's own statistics, so it can differ slightly from the
    whole-tomogram pick.
    """
    params = make_params(voxel_A, particle_diameter_A, sigma_ratio, min_distance_A, None,
                         contrast, border_A, bin, threshold_sigma)
    src = make_source(volume, params.bin)
    full_shape = src.source.shape if params.bin > 1 else src.shape
    mask = _mask_array(mask, full_shape)
    b = params.bin
    nz = src.shape[0]
    zc = nz // 2 if z is None else int(np.clip(int(z) // b, 0, nz - 1))
    radius = params.particle_diameter_A / 2 / params.picking_voxel_A
    # the slab also holds every peak that could suppress one near the plane
    reach = int(math.ceil(max(params.min_distance_vox, radius))) + 1
    za, zb = max(0, zc - reach), min(nz, zc + reach + 1)
    sign = -1.0 if contrast == "dark" else 1.0
    dog = _dog.dog_volume(src, params.sigma1_vox, params.sigma2_vox, sign, z_range=(za, zb),
                          workers=workers)
    bz = params.border_vox
    # real borders only where the slab touches the volume's faces
    zlim = (max(bz - za, 1), min(nz - bz, zb) - za)
    border = (1, bz, bz)
    med, sig = background_stats(dog, border, None if mask is None else _shift_mask_fn(mask, b, za))
    thr = choose_threshold(med, sig, threshold, threshold_sigma)
    zyx_all, vals_all = local_maxima(dog, med, border, z_limits=zlim)
    counts, edges = _robust_histogram(vals_all, bins)
    above = vals_all > thr
    zyx, vals = _select(zyx_all[above], vals_all[above], params, mask, dog_shape_z_offset=za)
    near = np.abs(zyx[:, 0] - zc) <= radius  # the particle cuts the shown plane
    picks = PickResult(xyz=to_input_voxels(zyx[near], b), scores=vals[near].astype(np.float32),
                       threshold=float(thr), background_median=med, background_sigma=sig,
                       params=params, n_candidates=int(above.sum()), shape=tuple(full_shape),
                       threshold_mode="auto" if threshold is None else "absolute")
    tomo_slice = src.read(zc, zc + 1)[0]
    return Preview(tomo_slice, dog[zc - za].copy(), picks, float(thr), (counts, edges))


def _shift_mask_fn(mask, b, za):
    inner = _mask_fn(mask, b)
    return lambda gz, gy, gx: inner(gz + za, gy, gx)
