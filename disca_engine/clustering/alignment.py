"""Alignment classification: reference averages, rotation search, and a merge test for K.

Rotation-invariant descriptors (``invariants.py``) and a briefly trained network both throw
away most of what tells two structures of similar shape apart (ring 7 against ring 8). A
subtomogram compared with a *rotated reference* uses all of its voxels, so the default
method refines its seed clusters by multi-reference alignment before the network learns them:

1. every seed cluster gets a reference: the member nearest the cluster's descriptor centre,
   then the average of its members aligned to it (two rounds, members only);
2. hard-EM rounds over all subtomograms: each one is compared with every reference under
   every rotation of a near-uniform grid (coarse, low-passed, missing wedge applied to the
   reference), then scored against its three best references at full size with a shift
   search, the winner's rotation refined locally; it joins the reference that matches best.
   References are re-averaged from their members, compensating the missing wedge;
3. a merge test decides K: on each Fourier shell, the correlation of two aligned averages is
   compared with what two averages of *one* structure would reach there (the geometric mean
   of their reliabilities, from half-set correlations by Spearman-Brown). The shell-weighted
   ratio is about 1 for one structure at any noise level; pairs at or above ``align_merge``
   merge, then more rounds, until nothing merges.

Conventions: volumes are [z, y, x]; a rotation matrix acts on (x, y, z) about the box
centre and rotates the content (``augment.rotate_volumes``). Numpy/scipy only.
"""
import copy
import time

import numpy as np

from .augment import quaternion_matrices, rotate_volumes
from ..pool import ordered_map, resolve_workers

PHI, PSI = 2 ** 0.5, 1.533751168755204288118041  # super-Fibonacci constants (Alexa 2022)


def rotation_grid(n):
    """``n`` near-uniform rotations (super-Fibonacci spiral of unit quaternions)."""
    s = np.arange(int(n)) + 0.5
    r, big_r = np.sqrt(s / n), np.sqrt(1 - s / n)
    a, b = 2 * np.pi * s / PHI, 2 * np.pi * s / PSI
    q = np.stack([big_r * np.cos(b), r * np.sin(a), r * np.cos(a), big_r * np.sin(b)], axis=1)
    return quaternion_matrices(q).astype(np.float32)


def grid_step(n):
    """Typical angle (radians) between neighbouring rotations of an ``n``-rotation grid."""
    return float((8 * np.pi ** 2 / n) ** (1 / 3))


def _perturbations(angle):
    """15 rotations: identity and turns by ``angle`` about 14 axes (faces and corners)."""
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3) / 3 ** 0.5
    axes = list(np.eye(3)) + list(-np.eye(3)) + list(corners)
    q = [np.array([1.0, 0, 0, 0])] + [np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * a])
                                       for a in axes]
    return quaternion_matrices(np.array(q)).astype(np.float32)


# ------------------------------------------------------------------ Fourier helpers
def _freq_radius(s):
    f = np.fft.fftfreq(s) * s
    z, y, x = np.meshgrid(f, f, f, indexing="ij")
    return np.sqrt(z * z + y * y + x * x)


def fourier_crop(vols, c):
    """Down-sample (B, s, s, s) to (B, c, c, c) by keeping the |k| < c/2 block of the
    spectrum (an ideal low-pass; the real-space grid spacing grows by s / c)."""
    s = vols.shape[1]
    if c >= s:
        return np.asarray(vols, np.float32)
    f = np.fft.fftshift(np.fft.fftn(vols, axes=(1, 2, 3)), axes=(1, 2, 3))
    a = s // 2 - c // 2
    f = f[:, a:a + c, a:a + c, a:a + c]
    out = np.fft.ifftn(np.fft.ifftshift(f, axes=(1, 2, 3)), axes=(1, 2, 3)).real
    return (out * (c ** 3 / s ** 3)).astype(np.float32)


def estimate_wedge(power, s):
    """Measured Fourier voxels (full fftn layout, s^3): where the mean power of the data is
    above a tenth of its shell's 90th percentile (the missing wedge holds almost none).
    Not the median: a tilt range narrower than about +-45 degrees leaves more than half of
    every shell unmeasured, the median falls inside the wedge, and the whole shell would
    count as measured."""
    r = np.rint(_freq_radius(s)).astype(int)
    measured = np.ones((s, s, s), bool)
    for k in range(1, r.max() + 1):
        shell = r == k
        measured[shell] = power[shell] > 0.1 * np.percentile(power[shell], 90)
    return measured


def _band(s, k_max):
    r = _freq_radius(s)
    return (r >= 1) & (r <= k_max)


def _half(mask):
    """A full-layout Fourier mask (symmetric under k -> -k) on the rfftn half grid."""
    return mask[..., : mask.shape[-1] // 2 + 1]


def _apply(vols, mask):
    """Filter (B, c, c, c) by a Fourier mask, flatten, and normalise each row to unit norm."""
    c = vols.shape[-1]
    f = np.fft.irfftn(np.fft.rfftn(np.asarray(vols, np.float32), axes=(1, 2, 3)) * _half(mask),
                      s=(c, c, c), axes=(1, 2, 3))
    f = f.reshape(len(vols), -1).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True) + 1e-12
    return f


def soft_sphere(s):
    """Soft spherical mask of radius s/2 - 1 (cosine edge of 2 voxels)."""
    ax = np.arange(s) - (s - 1) / 2.0
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    r = np.sqrt(z * z + y * y + x * x)
    edge = s / 2.0 - 1
    return np.clip(0.5 + 0.5 * np.cos(np.pi * np.clip(r - (edge - 2), 0, 2) / 2), 0, 1).astype(np.float32)


# ------------------------------------------------------------------ the data
class AlignedStack:
    """The subtomograms held twice: coarse (Fourier-cropped, wedge and band filtered,
    unit norm, as band coefficients; for the rotation search) and full size (for
    translations and averages)."""

    def __init__(self, particles, coarse=12, k_max=None, batch_size=256, indices=None, wedge=None,
                 coarse_shift=1, workers=1):
        self.workers = max(1, int(workers))     # threads of the scans, averages, merge tests
        self.s = int(particles.box)
        self.c = min(int(coarse), self.s)
        self.k_max = float(k_max or self.s / 3.0)
        vols, power = [], np.zeros((self.s,) * 3)
        for batch in particles.iter_batches(indices, batch_size):
            b = np.asarray(batch, np.float32)
            vols.append(b)
            if wedge is None:
                power += (np.abs(np.fft.fftn(b, axes=(1, 2, 3))) ** 2).sum(0)
        self.full = np.concatenate(vols)
        self.n = len(self.full)
        self.wedge = estimate_wedge(power / self.n, self.s) if wedge is None else wedge
        a = self.s // 2 - self.c // 2
        shifted = np.fft.fftshift(self.wedge)[a:a + self.c, a:a + self.c, a:a + self.c]
        self.wedge_c = np.fft.ifftshift(shifted)
        self.band_c = _band(self.c, min(self.c / 2.0 - 1, self.k_max * self.c / self.s))
        self.band_f = _band(self.s, self.k_max)
        # the coarse copies are kept as their band coefficients: a dot product over the few
        # hundred measured band voxels equals the real-space one over c^3 voxels (Parseval)
        measured = self.band_c & self.wedge_c
        self.band_idx, self.band_scale = _band_basis(self.c, measured)
        self.coarse_band = np.concatenate([
            _band_coefficients(_apply(fourier_crop(self.full[i:i + batch_size], self.c), measured),
                               self.c, self.band_idx, self.band_scale)
            for i in range(0, self.n, batch_size)])
        self.coarse_shift = int(coarse_shift)
        self.phases = _shift_phases(self.c, self.band_idx, self.coarse_shift)
        self.mask = soft_sphere(self.s)
        self._weights_grid = self._weights = None

    def subset(self, indices):
        """The same stack restricted to ``indices`` (copies of those rows only)."""
        sub = copy.copy(self)
        sub.full, sub.coarse_band = self.full[indices], self.coarse_band[indices]
        sub.n = len(sub.full)
        return sub

    def wedge_weights(self, grid):
        """(R, c^3) the coarse measured-voxel mask as seen by a reference turned by each grid
        rotation Q: W(Q k) (computed once for the grid a classification uses)."""
        if grid is not self._weights_grid:
            w = _rotated_wedges(self.wedge_c, grid.transpose(0, 2, 1))
            self._weights_grid, self._weights = grid, w.reshape(len(grid), -1)
        return self._weights


# ------------------------------------------------------------------ references
def _rotated_coarse(refs, grid, stack, wedge=True):
    """(K, R, c^3) rotated coarse references (band filtered), scaled to unit norm *after*
    the missing wedge (``wedge``) or as they are. The wedge itself need not be applied: the
    subtomograms it multiplies hold nothing outside the measured voxels. The norm of the
    wedge-filtered rotated reference comes from Parseval, |W F(QA)|^2 summed = the power of A
    weighted by the wedge seen from A's frame: one matrix product instead of K x R FFTs."""
    small = fourier_crop(refs * stack.mask, stack.c)
    c = stack.c
    spec = np.fft.fftn(small, axes=(1, 2, 3)) * stack.band_c
    small = np.fft.ifftn(spec, axes=(1, 2, 3)).real.astype(np.float32)
    k, r = len(small), len(grid)
    rot = rotate_volumes(np.repeat(small, r, axis=0), np.tile(grid, (k, 1, 1)),
                         np.random.default_rng(0), noise_std=0.0,
                         workers=stack.workers).reshape(k, r, -1)
    if wedge:
        power = (np.abs(spec) ** 2).reshape(k, -1).astype(np.float32)
        norm = np.sqrt(np.maximum(power @ stack.wedge_weights(grid).T, 0) / c ** 3)   # (K, R)
    else:
        norm = np.linalg.norm(rot, axis=2)
    return rot / (norm[..., None] + 1e-12)


def _spectra(vols, m):
    """Half spectra (rfftn, float32 in -> complex64 out) of (B, s, s, s), times mask ``m``."""
    return np.fft.rfftn(np.asarray(vols, np.float32), axes=(1, 2, 3)) * m


def _energy(f, s):
    """Energy of each full spectrum from its rfftn half (B, s, s, s//2 + 1): planes other
    than kx = 0 and Nyquist stand for two."""
    return ((f.real ** 2 + f.imag ** 2) * _half_weights(s)).sum((1, 2, 3))


def _half_weights(s):
    """How many full-spectrum voxels each kx plane of an rfftn half grid stands for: two,
    except kx = 0 and (even s) Nyquist."""
    w = np.full(s // 2 + 1, 2.0, np.float32)
    w[0] = 1.0
    if s % 2 == 0:
        w[-1] = 1.0
    return w


def _window(s, t_max):
    d = np.abs(np.fft.fftfreq(s) * s)
    ok = (d[:, None, None] <= t_max) & (d[None, :, None] <= t_max) & (d[None, None, :] <= t_max)
    return np.flatnonzero(ok.ravel())


def _translation_scores(fp, ep, moved, m, t_max):
    """Best normalised correlation over shifts |t| <= t_max of targets (masked half spectra
    ``fp`` (B, ...) with energies ``ep``) with volumes ``moved`` (B, s, s, s) in the mask
    ``m``; returns (scores, shifts (B, 3)) with target ~ roll(moved, shift)."""
    s = moved.shape[1]
    fr = _spectra(moved, m)
    norm = np.sqrt(ep * _energy(fr, s)) + 1e-12
    cc = np.fft.irfftn(fp * np.conj(fr), s=(s, s, s), axes=(1, 2, 3)).reshape(len(fr), -1)
    win = _window(s, t_max)
    cc = cc[:, win]
    best = np.argmax(cc, axis=1)
    shifts = np.stack(np.unravel_index(win[best], (s, s, s)), axis=1)
    shifts = np.where(shifts > s // 2, shifts - s, shifts)
    return cc[np.arange(len(fr)), best] * (s ** 3) / norm, shifts


def refine(fp, ep, movers, mats, m, t_max, step, levels=2):
    """Local search around each rotation (B, 3, 3) of ``movers`` onto the targets (half
    spectra ``fp``, energies ``ep``): ``levels`` rounds of 14 neighbours at half the previous
    angle, starting at half the grid ``step``; each candidate scored with its best shift.
    Returns (mats, scores, shifts)."""
    b = len(mats)
    angle = step / 2
    best_s = np.full(b, -np.inf, np.float32)
    best_t = np.zeros((b, 3), np.int64)
    for _ in range(levels):
        centre = mats.copy()
        for p, turn in enumerate(_perturbations(angle)):
            if p == 0 and np.isfinite(best_s).all():
                continue  # the centre was scored at the previous level
            cand = np.einsum("ij,bjk->bik", turn, centre)
            moved = rotate_volumes(movers, cand, np.random.default_rng(0), noise_std=0.0)
            sc, sh = _translation_scores(fp, ep, moved, m, t_max)
            better = sc > best_s
            mats = np.where(better[:, None, None], cand, mats)
            best_s, best_t = np.where(better, sc, best_s), np.where(better[:, None], sh, best_t)
        angle /= 2
    return mats, best_s, best_t


def _rotated_band(stack, refs, grid):
    """(K x R, 2n) band coefficients (real pairs) of every reference turned by every grid
    rotation, on the coarse copy with the missing wedge applied: what the rotation scans of
    ``align`` and ``score_matrix`` compare subtomograms with."""
    rc = _rotated_coarse(refs, grid, stack).reshape(len(refs) * len(grid), -1)
    return np.concatenate(ordered_map(
        lambda i: _real_pair(_band_coefficients(rc[i:i + 4096], stack.c, stack.band_idx,
                                                stack.band_scale)),
        range(0, len(rc), 4096), stack.workers))


def align(stack, refs, grid, allowed=None, top=3, t_max=3, chunk=256, weight=None):
    """Best reference, rotation (N, 3, 3), shift and score of every subtomogram: the best
    grid rotation of each of its ``top`` best references (coarse), scored with a shift
    search at full size; the winner's rotation refined locally (one level).
    ``allowed`` (N, K) bool restricts the references a subtomogram may join; ``weight``
    (K,) multiplies each reference's scores when they are compared (``disattenuation``).
    Chunks of ``chunk`` subtomograms (fewer, so that every worker has one) run in
    ``stack.workers`` threads; every subtomogram's result is the same for any chunking."""
    k = len(refs)
    rc = _rotated_band(stack, refs, grid)
    labels, rot = np.empty(stack.n, np.int64), np.empty((stack.n, 3, 3), np.float32)
    shift, score = np.empty((stack.n, 3), np.int64), np.empty(stack.n, np.float32)
    m = _half(stack.band_f & stack.wedge)
    top = min(top, k)
    chunk = max(1, min(chunk, -(-stack.n // stack.workers)))

    def scan(a):  # each chunk writes its own rows
        rows = slice(a, a + chunk)
        labels[rows], rot[rows], shift[rows], score[rows] = _align_rows(
            stack, rows, refs, grid, rc, m, top, t_max,
            None if allowed is None else allowed[rows], weight)

    ordered_map(scan, range(0, stack.n, chunk), stack.workers)
    return labels, rot, shift, score


def _align_rows(stack, rows, refs, grid, rc, m, top, t_max, allowed, weight):
    """``align`` of the subtomograms ``rows`` (a slice) against the rotated coarse references
    ``rc`` (band coefficients): (labels, rotations, shifts, scores) of those rows."""
    k = len(refs)
    fpc = _spectra(stack.full[rows], m)
    epc = _energy(fpc, stack.s)
    sc = _coarse_scores(stack.coarse_band[rows], rc, stack.phases)
    sc = sc.reshape(-1, k, len(grid))
    best_r = sc.argmax(axis=2)                              # (B, K)
    best_s = np.take_along_axis(sc, best_r[..., None], 2)[..., 0]
    if weight is not None:
        best_s = best_s * weight
    if allowed is not None:
        best_s = np.where(allowed, best_s, -np.inf)
    cand = np.argsort(-best_s, axis=1)[:, :top]             # (B, top)
    b = len(best_s)
    pairs = np.repeat(np.arange(b), top)
    refs_idx, rot_idx = cand.ravel(), best_r[pairs, cand.ravel()]
    rotated = rotate_volumes(refs[refs_idx] * stack.mask, grid[rot_idx],
                             np.random.default_rng(0), noise_std=0.0)
    fine, _ = _translation_scores(fpc[pairs], epc[pairs], rotated, m, t_max)
    fine = fine.reshape(b, top)
    if weight is not None:
        fine = fine * weight[cand]
    if allowed is not None:
        fine = np.where(np.take_along_axis(allowed, cand, 1), fine, -np.inf)
    sel = np.arange(b) * top + fine.argmax(axis=1)
    mats, score, shift = refine(fpc, epc, refs[refs_idx[sel]] * stack.mask, grid[rot_idx[sel]],
                                m, t_max, grid_step(len(grid)), levels=1)
    return refs_idx[sel], mats, shift, score


def score_matrix(stack, refs, grid, weight=None, t_max=3):
    """(N, K) score of every subtomogram against every reference: each reference at its best
    coarse grid rotation, scored at full size with a shift search (as ``align`` scores its
    top candidates), multiplied by ``weight`` (K,) when given (``disattenuation``)."""
    k = len(refs)
    rc = _rotated_band(stack, refs, grid)
    masked = refs * stack.mask
    m = _half(stack.band_f & stack.wedge)
    out = np.empty((stack.n, k), np.float32)
    chunk = max(1, min(1024 // k, -(-stack.n // stack.workers)))

    def scan(a):  # each chunk writes its own rows
        rows = slice(a, min(a + chunk, stack.n))
        fpc = _spectra(stack.full[rows], m)
        epc = _energy(fpc, stack.s)
        sc = _coarse_scores(stack.coarse_band[rows], rc, stack.phases).reshape(-1, k, len(grid))
        b = len(sc)
        best_r = sc.argmax(axis=2)                               # (B, K)
        pairs = np.repeat(np.arange(b), k)
        rotated = rotate_volumes(np.tile(masked, (b, 1, 1, 1)),
                                 grid[best_r.ravel()], np.random.default_rng(0), noise_std=0.0)
        out[rows] = _translation_scores(fpc[pairs], epc[pairs], rotated, m, t_max)[0].reshape(b, k)

    ordered_map(scan, range(0, stack.n, chunk), stack.workers)
    return out if weight is None else out * weight[None]


def _band_basis(c, mask):
    """Where a Fourier mask (full layout, c^3) lies on the rfftn half grid (flat indices),
    and the weights that make a dot product of band coefficients equal the real-space dot
    product of the filtered volumes (planes other than kx = 0 and Nyquist stand for two)."""
    half = _half(mask)
    idx = np.flatnonzero(half)
    scale = np.sqrt(np.broadcast_to(_half_weights(c), half.shape).ravel()[idx] / c ** 3)
    return idx, scale.astype(np.float32)


def _band_coefficients(vols, c, idx, scale):
    """(B, M) complex band coefficients of real volumes (B, c^3) on a ``_band_basis``."""
    f = np.fft.rfftn(np.asarray(vols, np.float32).reshape(-1, c, c, c), axes=(1, 2, 3))
    return (f.reshape(len(f), -1)[:, idx] * scale).astype(np.complex64)


def _real_pair(f):
    return np.concatenate([f.real, f.imag], axis=1).astype(np.float32)


def _shift_phases(c, idx, t_max):
    """(T, M) phase ramps of the integer shifts |t| <= ``t_max`` in each axis on the band
    voxels ``idx``: multiplying band coefficients by one shifts the volume circularly."""
    f = np.fft.fftfreq(c) * c
    kz, ky, kx = np.meshgrid(f, f, np.fft.rfftfreq(c) * c, indexing="ij")
    k = np.stack([kz.ravel()[idx], ky.ravel()[idx], kx.ravel()[idx]], axis=1)
    span = np.arange(-int(t_max), int(t_max) + 1)
    t = np.stack(np.meshgrid(span, span, span, indexing="ij"), -1).reshape(-1, 3)
    return np.exp(-2j * np.pi * (t @ k.T) / c).astype(np.complex64)


def _coarse_scores(coef, ref_band, phases):
    """(B, M) correlations of coarse subtomograms (complex band coefficients (B, n)) with
    rotated coarse references (real pairs (M, 2n)), the best over the integer shifts of
    ``phases`` (a picked particle and a reference average are rarely centred alike, and a
    rotation ranked without shifts is often wrong)."""
    best = None
    for ph in phases:
        sc = _real_pair(coef * ph) @ ref_band.T
        best = sc if best is None else np.maximum(best, sc)
    return best


def _rotated_wedges(wedge, mats):
    """A measured-voxel mask (s^3, unshifted) turned by each matrix: (B, s, s, s), unshifted.
    The mask is rotated about the Fourier origin: padded to an odd box whose centre is the
    origin of the shifted spectrum."""
    s = wedge.shape[0]
    if s % 2:
        padded = np.fft.fftshift(wedge).astype(np.float32)
    else:
        padded = np.zeros((s + 1,) * 3, np.float32)
        padded[:s, :s, :s] = np.fft.fftshift(wedge)
    rot = rotate_volumes(np.repeat(padded[None], len(mats), 0), mats, np.random.default_rng(0),
                         noise_std=0.0)[:, :s, :s, :s]
    return np.fft.ifftshift(rot, axes=(1, 2, 3))


def averages(stack, labels, rot, shift, k):
    """(full, half1, half2, counts): averages (K, s, s, s) of the members aligned back to
    their reference's frame (shift undone, then the inverse rotation), each Fourier voxel
    divided by the number of members that measured it (missing-wedge compensation: without
    it an average of members in similar orientations carries their wedge, and attracts
    subtomograms by orientation instead of structure), and those numbers (K, s, s, s,
    unshifted Fourier layout). Halves alternate members."""
    s = stack.s
    half = np.zeros(stack.n, np.int64)
    for j in range(k):
        members = np.flatnonzero(labels == j)
        half[members[1::2]] = 1
    num = np.zeros((2, k, s, s, s), np.complex64)
    den = np.zeros((2, k, s, s, s), np.float32)

    def aligned_back(a):  # the members a:a + 128 in their reference's frame, and their wedges
        idx = np.arange(a, min(a + 128, stack.n))
        vols = np.stack([np.roll(stack.full[i], -shift[i], axis=(0, 1, 2)) for i in idx])
        mats = rot[idx].transpose(0, 2, 1)
        back = rotate_volumes(vols, mats, np.random.default_rng(0), noise_std=0.0)
        return idx, np.fft.fftn(back, axes=(1, 2, 3)).astype(np.complex64), \
            _rotated_wedges(stack.wedge, mats)

    starts = list(range(0, stack.n, 128))
    for g in range(0, len(starts), stack.workers):   # summed in order: the same for any workers
        for idx, f, w in ordered_map(aligned_back, starts[g:g + stack.workers], stack.workers):
            for n, i in enumerate(idx):
                num[half[i], labels[i]] += f[n]
                den[half[i], labels[i]] += w[n]

    def real(nu, de):
        return np.fft.ifftn(nu / np.maximum(de, 1.0), axes=(1, 2, 3)).real.astype(np.float32)
    counts = den.sum(0)
    return real(num.sum(0), counts), real(num[0], den[0]), real(num[1], den[1]), counts


# ------------------------------------------------------------------ merge test
def _shell_index(s, k_max):
    r = np.rint(_freq_radius(s)).astype(int)
    return np.where((r >= 1) & (r <= k_max), r, 0)


def _shell_corr(fa, fb, shells, n_shells, where=None):
    """Correlation of two spectra on each Fourier shell 1..n_shells, over the voxels
    ``where`` (bool, all when None)."""
    if where is not None:
        shells = np.where(where, shells, 0)

    def per_shell(v):
        return np.bincount(shells.ravel(), v.ravel(), minlength=n_shells + 1)[1:]
    num = per_shell(np.real(fa * np.conj(fb)))
    return num / np.sqrt(per_shell(np.abs(fa) ** 2) * per_shell(np.abs(fb) ** 2) + 1e-20)


def _best_pose(stack, ref_i, ref_j, rc_j, plain_i, grid, pose_shift, top=4, t_max=4, cover=None):
    """Reference j turned and shifted onto reference i: the top coarse rotations, each
    scored with a coarse shift search up to ``pose_shift`` coarse voxels (two averages are
    rarely centred alike; ranked without shifts, the right rotation was often not among
    the top ones), then scored at full size and the best refined locally.
    ``cover`` (mask_i, counts_j, min_count): the full-size scores are taken only over the
    Fourier voxels both averages measured (j's counts turned with each candidate), so that
    the pose matches the structures rather than the regions the two clusters measured."""
    m = _half(stack.band_f)
    fp = _spectra(ref_i[None] * stack.mask, m)
    ep = _energy(fp, stack.s)
    if pose_shift > 0:
        c, bc = stack.c, _half(stack.band_c)
        fpc = _spectra(plain_i.reshape(1, c, c, c), bc)
        rot = rc_j.reshape(-1, c, c, c)
        coarse, _ = _translation_scores(np.repeat(fpc, len(rot), 0),
                                        np.repeat(_energy(fpc, c), len(rot)), rot, bc, pose_shift)
    else:
        coarse = rc_j @ plain_i
    cand = np.argsort(-coarse)[:top]
    mover = ref_j[None] * stack.mask
    rotated = rotate_volumes(np.repeat(mover, len(cand), 0), grid[cand], np.random.default_rng(0),
                             noise_std=0.0)
    fp, ep = np.repeat(fp, len(cand), 0), np.repeat(ep, len(cand))
    if cover is not None:
        mask_i, counts_j, min_count = cover
        m = _half(stack.band_f & mask_i & (_rotated_wedges(counts_j, grid[cand]) >= min_count))
        fp = _spectra(ref_i[None] * stack.mask, m)
        ep = _energy(fp, stack.s)
    fine, _ = _translation_scores(fp, ep, rotated, m, t_max)
    b = int(np.argmax(fine))
    one = slice(b, b + 1)
    mats, _, shifts = refine(fp[one], ep[one], mover, grid[cand[b]][None],
                             m[one] if m.ndim == 4 else m, t_max, grid_step(len(grid)))
    moved = rotate_volumes(mover, mats, np.random.default_rng(0), noise_std=0.0)[0]
    return np.roll(moved, shifts[0], axis=(0, 1, 2)), mats


def pair_ratios(stack, refs, half1, half2, grid, pose_shift=2, counts=None, min_count=1.0,
                pose_top=4):
    """(K, K) structural agreement of every two references, in [about -1, 1]: on each
    Fourier shell, their correlation after the best rotation and shift divided by what
    two averages of one structure would reach there (the geometric mean of their
    reliabilities, from half-set correlations by Spearman-Brown), averaged over shells
    with weights N_shell x rel_i x rel_j (the shells both averages measure well). Two
    averages of one structure score about 1 at any noise level; the score of two
    structures is their true similarity at the resolution the data support.
    With ``counts`` (how many members measured each Fourier voxel, ``averages``), the
    correlation is taken over the voxels both averages measured (at least ``min_count``
    members each, j's counts turned with j): a cluster whose members share few
    orientations misses part of Fourier space, which would otherwise dilute the
    correlation of two clusters of one structure seen from different sides; the pose is
    then searched over those voxels too, among the ``pose_top`` best coarse rotations."""
    k, s = len(refs), stack.s
    n_sh = int(stack.k_max)
    shells = _shell_index(s, n_sh)
    count = np.bincount(shells.ravel(), minlength=n_sh + 1)[1:]
    m = stack.mask
    half_r = np.array([_shell_corr(np.fft.fftn(a * m), np.fft.fftn(b * m), shells, n_sh)
                       for a, b in zip(half1, half2)])
    half_r = np.clip(half_r, 1e-3, 0.999)
    rel = 2 * half_r / (1 + half_r)                                   # (K, shells)
    rc = _rotated_coarse(refs, grid, stack, wedge=False)
    plain = _apply(fourier_crop(refs * m, stack.c), stack.band_c)
    spectra = [np.fft.fftn(r * m) for r in refs]

    measured = None if counts is None else counts >= min_count      # (K, s, s, s)

    def agreement(pair):
        i, j = pair
        cover = None if counts is None else (measured[i], counts[j], min_count)
        moved, mats = _best_pose(stack, refs[i], refs[j], rc[j], plain[i], grid, pose_shift,
                                 pose_top, cover=cover)
        both = None
        if counts is not None:
            both = measured[i] & (_rotated_wedges(counts[j], mats)[0] >= min_count)
        cc = _shell_corr(spectra[i], np.fft.fftn(moved * m), shells, n_sh, both)
        expect = np.sqrt(rel[i] * rel[j])
        w = count * rel[i] * rel[j]
        return float(np.sum(w * cc / expect) / np.sum(w))

    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    out = np.eye(k)
    for (i, j), value in zip(pairs, ordered_map(agreement, pairs, stack.workers)):
        out[i, j] = out[j, i] = value
    return out


def merge_pairs(ratio, threshold):
    """Pairs to merge this round, best ratio first, each reference at most once. ``ratio``
    is the agreement of two references over sqrt(rel_i rel_j), what two averages of one
    structure would reach."""
    k = len(ratio)
    pairs = sorted(((ratio[i, j], i, j) for i in range(k) for j in range(i + 1, k)
                    if ratio[i, j] >= threshold), reverse=True)
    used, out = set(), []
    for value, i, j in pairs:
        if i not in used and j not in used:
            out.append((i, j, float(value)))
            used.update((i, j))
    return out


def _relabel(labels, groups):
    """Labels after merging each (i, j) pair, contiguous 0..K'-1."""
    lab = labels.copy()
    for i, j, _ in groups:
        lab[lab == j] = i
    _, lab = np.unique(lab, return_inverse=True)
    return lab.astype(np.int64)


# ------------------------------------------------------------------ the procedure
def _initial_references(stack, seeds, z_inv, grid, rounds, log):
    """References of the seed clusters: the most central member, then averages of the
    members aligned to it."""
    k = int(seeds.max()) + 1
    refs = np.empty((k, stack.s, stack.s, stack.s), np.float32)
    for j in range(k):
        members = np.flatnonzero(seeds == j)
        centre = z_inv[members].mean(0)
        refs[j] = stack.full[members[np.argmin(((z_inv[members] - centre) ** 2).sum(1))]]
    allowed = seeds[:, None] == np.arange(k)[None]
    for _ in range(rounds):
        labels, rot, shift, _ = align(stack, refs, grid, allowed=allowed)
        refs = averages(stack, labels, rot, shift, k)[0]
    return refs


def _drop_small(labels, min_size):
    sizes = np.bincount(labels)
    keep = np.flatnonzero(sizes >= min_size)
    return keep if len(keep) >= 1 else np.array([int(np.argmax(sizes))])


def _reassign(stack, refs, grid, keep, labels, rot, shift, score, weight=None):
    """After the references ``keep`` alone are kept: the members of the others aligned
    again to them (the rest keep their assignment, which a dropped reference did not win)."""
    index = np.full(int(labels.max()) + 1, -1)
    index[keep] = np.arange(len(keep))
    labels = index[labels]
    orphans = np.flatnonzero(labels < 0)
    if len(orphans):
        out = align(stack.subset(orphans), refs, grid, weight=weight)
        labels[orphans], rot[orphans], shift[orphans], score[orphans] = out
    return labels, rot, shift, score


def disattenuation(stack, half1, half2):
    """(K,) 1 / sqrt(reliability) of each average: its correlation with the noiseless
    structure is about sqrt(rel) (rel = 2 r / (1 + r) from the correlation r of its two
    half-set averages over the band), so a subtomogram's score against a noisy average (a
    small cluster) is lower than against a clean one of the same structure. Dividing by it
    (Spearman's correction for attenuation) compares subtomograms with the structures
    rather than with averages of unequal quality."""
    m = _half(stack.band_f)
    fa, fb = _spectra(half1 * stack.mask, m), _spectra(half2 * stack.mask, m)
    w = _half_weights(stack.s)
    num = (np.real(fa * np.conj(fb)) * w).sum((1, 2, 3))
    r = num / np.sqrt(_energy(fa, stack.s) * _energy(fb, stack.s) + 1e-20)
    rel = np.clip(2 * r / (1 + np.clip(r, 0, None)), 0.05, 1.0)
    return (1 / np.sqrt(rel)).astype(np.float32)


def _rounds(stack, refs, grid, labels, min_size, max_rounds, log, history, tol=0.02,
            disattenuate=False, halves=None):
    """Hard-EM rounds (assign, re-average) until fewer than ``tol`` of the labels change.
    With ``disattenuate``, scores are compared after ``disattenuation`` of the references
    (from their half-set averages: ``halves`` for the first round, when known)."""
    h1 = h2 = counts = None
    for _ in range(max_rounds):
        t1 = time.time()
        weight = disattenuation(stack, *halves) if disattenuate and halves is not None else None
        new, rot, shift, score = align(stack, refs, grid, weight=weight)
        keep = _drop_small(new, min_size)
        if len(keep) < len(refs):  # too few members to average: their members go elsewhere
            refs = refs[keep]
            weight = None if weight is None else weight[keep]
            new, rot, shift, score = _reassign(stack, refs, grid, keep, new, rot, shift, score,
                                               weight)
        present, new = np.unique(new, return_inverse=True)
        refs = refs[present]
        changed = _changed(labels, new)
        labels = new
        refs, h1, h2, counts = averages(stack, labels, rot, shift, len(refs))
        halves = (h1, h2)
        sizes = np.bincount(labels).tolist()
        history.append({"round": len(history) + 1, "k": len(refs), "changed": changed,
                        "mean_score": float(score.mean()), "sizes": sizes,
                        "seconds": round(time.time() - t1, 2)})
        log(f"  alignment round {len(history)}: K={len(refs)} changed={100 * changed:.1f}% "
            f"mean score {score.mean():.3f} sizes=[{','.join(map(str, sizes))}] "
            f"({time.time() - t1:.1f}s)")
        if changed < tol:
            break
    return refs, h1, h2, counts, labels


def _changed(old, new):
    """Fraction of subtomograms whose cluster changed, after matching the label ids."""
    from .labels import match_labels
    return float(np.mean(match_labels(new, old) != old))


def classify(particles, seeds, z_inv, cfg, log=print):
    """Alignment classification from seed labels; returns (labels, history). Above
    ``align_max_n`` subtomograms the classes are found on a random subsample of that size
    (all of it held in memory) and the others are assigned to its references in chunks."""
    limit = int(cfg.get("align_max_n") or 0)
    if not limit or particles.n <= limit:
        return _classify(particles, seeds, z_inv, cfg, log, None)[:2]
    sub = np.sort(np.random.default_rng(int(cfg["seed"])).choice(particles.n, limit, replace=False))
    log(f"alignment classification on a random subsample of {limit} of the {particles.n} "
        f"subtomograms; the others are assigned to its references")
    _, history, refs, stack, grid = _classify(particles, seeds[sub], z_inv[sub], cfg, log, sub)
    labels = np.empty(particles.n, np.int64)
    for a in range(0, particles.n, limit):
        idx = np.arange(a, min(a + limit, particles.n))
        chunk = AlignedStack(particles, coarse=stack.c, indices=idx, wedge=stack.wedge,
                             coarse_shift=stack.coarse_shift, workers=stack.workers)
        labels[idx] = align(chunk, refs, grid)[0]
    return labels, history


def aligned_stack(particles, cfg, indices=None):
    """The ``AlignedStack`` and rotation grid a classification with settings ``cfg`` uses."""
    stack = AlignedStack(particles, coarse=int(cfg.get("align_coarse") or 12), indices=indices,
                         coarse_shift=int(cfg.get("align_coarse_shift", 1)),
                         workers=resolve_workers(cfg.get("threads")))
    return stack, rotation_grid(int(cfg.get("align_rotations") or 1500))


def _classify(particles, seeds, z_inv, cfg, log, indices):
    t0 = time.time()
    stack, grid = aligned_stack(particles, cfg, indices)
    min_size = int(cfg["min_subtomograms_per_cluster"])
    refs = _initial_references(stack, seeds, z_inv, grid, int(cfg.get("align_init_rounds", 2)), log)
    log(f"alignment: {stack.n} subtomograms, {len(refs)} seed references, {len(grid)} rotations, "
        f"wedge {100 * (1 - stack.wedge.mean()):.0f}% of Fourier space, {stack.workers} thread(s) "
        f"({time.time() - t0:.1f}s)")
    budget = int(cfg.get("align_rounds", 12))
    history = []
    dis = bool(cfg.get("align_disattenuate", False))
    state = _rounds(stack, refs, grid, seeds, min_size, budget, log, history, disattenuate=dis)
    state = _merge_until_stable(stack, grid, state, cfg, log, history)
    for _ in range(int(cfg.get("align_split_passes", 0))):
        split = _split_mixed(stack, grid, state, z_inv, cfg, log)
        if split is None:
            break
        state = _rounds(stack, split[0], grid, split[1], min_size, budget // 3 or 1, log, history,
                        disattenuate=dis)
        state = _merge_until_stable(stack, grid, state, cfg, log, history)
    labels, refs = state[-1], state[0]
    if cfg.get("align_polish"):
        labels, history, refs, stack, grid = _polished(stack, grid, labels, z_inv, cfg, log,
                                                       history, want_refs=indices is not None)
    if cfg.get("align_junk_split"):
        labels, refs = _junk_split(stack, grid, labels, refs, z_inv, cfg, log, history,
                                   want_refs=indices is not None)
    return labels, history, refs, stack, grid


def _moved(old, new):
    """Fraction of subtomograms outside the old cluster that contributes most to their new
    one (well defined when K changed, unlike a one-to-one matching of the ids)."""
    from .labels import contingency
    return 1.0 - contingency(new, old).max(1).sum() / len(new)


def _polished(stack, grid, labels, z_inv, cfg, log, history, want_refs=True):
    """The two-view relabelling of the final labels (``polish.py``); returns what
    ``_classify`` returns, the references of the relabelled clusters only ``want_refs``
    (they cost about three rounds; only the subsample path assigns the rest to them)."""
    from .polish import canonical, references_from_labels, two_view_labels
    t1 = time.time()
    labels = canonical(labels)
    refs, weight = references_from_labels(stack, labels, z_inv, grid)
    scores = score_matrix(stack, refs, grid, weight)
    new, passes = two_view_labels(z_inv, scores, labels, seed=int(cfg["seed"]),
                                  min_size=int(cfg["min_subtomograms_per_cluster"]))
    changed = _moved(labels, new)
    sizes = np.bincount(new).tolist()
    history.append({"polish": True, "k": len(sizes), "changed": changed, "passes": passes,
                    "sizes": sizes, "seconds": round(time.time() - t1, 2)})
    log(f"  two-view relabelling: K={len(sizes)} changed={100 * changed:.1f}% in {passes} "
        f"pass(es) sizes=[{','.join(map(str, sizes))}] ({time.time() - t1:.1f}s)")
    if not want_refs:
        refs = None
    elif not np.array_equal(new, labels):
        refs = references_from_labels(stack, new, z_inv, grid)[0]
    return new, history, refs, stack, grid


def _junk_split(stack, grid, labels, refs, z_inv, cfg, log, history, want_refs=True):
    """The junk split of the final labels (``junk_split.py``); returns (labels, references
    of the new classes when ``want_refs``, else ``refs`` unchanged or None)."""
    from .junk_split import null_scores, own_scores, split_low_groups
    t1 = time.time()
    scores, averages_ = own_scores(stack, labels, z_inv, grid)
    null = null_scores(stack, labels, averages_, grid, seed=int(cfg["seed"]))
    new, splits = split_low_groups(scores, labels, int(cfg["min_subtomograms_per_cluster"]),
                                   seed=int(cfg["seed"]), null=null,
                                   position=float(cfg["align_junk_split"]),
                                   spectrum=float(cfg.get("align_junk_spectrum") or 0))
    sizes = np.bincount(new).tolist()
    history.append({"junk_split": True, "k": len(sizes), "splits": splits, "sizes": sizes,
                    "seconds": round(time.time() - t1, 2)})
    parts = "; ".join(f"class {c + 1}: {n_hi} kept (mean score {s_hi:.2f}), {n_lo} split off "
                      f"({s_lo:.2f}, {pos:.2f} of the way from noise, null ratio {ratio:.2f})"
                      for c, n_hi, n_lo, s_hi, s_lo, pos, ratio in splits) or "none split"
    log(f"  junk split: K={len(sizes)} ({parts}) ({time.time() - t1:.1f}s)")
    if splits and want_refs:
        from .polish import references_from_labels
        refs = references_from_labels(stack, new, z_inv, grid)[0]
    return new, refs


def _ratios(stack, grid, refs, h1, h2, counts, cfg):
    """``pair_ratios`` with the merge-test settings of ``cfg``."""
    joint = bool(cfg.get("align_merge_joint", False))
    return pair_ratios(stack, refs, h1, h2, grid, int(cfg.get("align_pose_shift", 2)),
                       counts if joint else None, float(cfg.get("align_merge_min_count", 1.0)),
                       int(cfg.get("align_pose_top", 4)))


def _merge_until_stable(stack, grid, state, cfg, log, history):
    """Merge tests, each followed by a few rounds, until no pair merges; returns the state
    (refs, half1, half2, counts, labels) of the last rounds."""
    threshold = float(cfg.get("align_merge") or 0)
    budget = int(cfg.get("align_rounds", 12))
    min_size = int(cfg["min_subtomograms_per_cluster"])
    dis = bool(cfg.get("align_disattenuate", False))
    keep_larger = bool(cfg.get("align_merge_keep_larger", False))
    refs, h1, h2, counts, labels = state
    while threshold > 0 and len(refs) > 1 and len(history) < 3 * budget:
        t1 = time.time()
        ratio = _ratios(stack, grid, refs, h1, h2, counts, cfg)
        merges = merge_pairs(ratio, threshold)
        np.fill_diagonal(ratio, 0)
        log(f"  merge test: {len(merges)} pair(s) at or above {threshold:g} x the half-set "
            f"agreement (highest ratio {ratio.max():.2f}) ({time.time() - t1:.1f}s)")
        history.append({"merge_test": True, "merges": merges, "highest_ratio": float(ratio.max())})
        if not merges:
            break
        if keep_larger:
            merges = _larger_first(merges, labels)
        labels = _relabel(labels, merges)
        kept = _kept_after_merging(merges, len(refs))
        refs, h1, h2, counts, labels = _rounds(stack, refs[kept], grid, labels, min_size,
                                               budget // 3 or 1, log, history, disattenuate=dis,
                                               halves=(h1[kept], h2[kept]))
    return refs, h1, h2, counts, labels


def _split_mixed(stack, grid, state, z_inv, cfg, log):
    """The split test, the merge test's converse: each cluster large enough is cut in two
    (k-means of its members' invariant descriptors, then alignment rounds on its members
    alone with two references); if the two parts would not merge (ratio below
    ``align_merge``), the cluster held two structures and is split. Once two structures
    share a cluster, nothing else separates them: every round re-averages them together.
    Returns (refs, labels) with the splits, or None when no cluster splits."""
    from sklearn.cluster import KMeans
    refs, _, _, _, labels = state
    threshold = float(cfg.get("align_merge") or 0)
    min_size = int(cfg["min_subtomograms_per_cluster"])
    smallest = max(min_size, int(cfg.get("align_split_min", 10)))
    new_refs, labels = list(refs), labels.copy()
    for c in range(len(refs)):
        t1 = time.time()
        members = np.flatnonzero(labels == c)
        if len(members) < 2 * smallest:
            continue
        z = z_inv[members]
        parts = KMeans(2, n_init=4, random_state=int(cfg["seed"]) % (2 ** 31)).fit_predict(z)
        if np.bincount(parts, minlength=2).min() < smallest:
            continue
        sub = stack.subset(members)
        pair = _initial_references(sub, parts, z, grid, 1, log)
        pair, h1, h2, counts, parts = _rounds(sub, pair, grid, parts, smallest, 4,
                                              lambda m: None, [])
        if len(pair) < 2:   # the members gathered on one reference: one structure
            log(f"  split test of cluster {c + 1} ({len(members)}): one part absorbed the other: "
                f"kept ({time.time() - t1:.1f}s)")
            continue
        ratio = float(_ratios(sub, grid, pair, h1, h2, counts, cfg)[0, 1])
        sizes = np.bincount(parts).tolist()
        verdict = "split" if ratio < threshold else "kept"
        log(f"  split test of cluster {c + 1} ({len(members)}): parts {sizes}, ratio "
            f"{ratio:.2f}: {verdict} ({time.time() - t1:.1f}s)")
        if ratio < threshold:
            labels[members[parts == 1]] = len(new_refs)
            new_refs[c] = pair[0]
            new_refs.append(pair[1])
    if len(new_refs) == len(refs):
        return None
    return np.stack(new_refs), labels


def _larger_first(merges, labels):
    """Each merged pair ordered (larger cluster, smaller): the larger one's reference, the
    more reliable average, is kept and the smaller one's members re-align to it."""
    sizes = np.bincount(labels)
    return [(i, j, v) if sizes[i] >= sizes[j] else (j, i, v) for i, j, v in merges]


def _kept_after_merging(merges, k):
    """Indices of the references kept after merging: the first of each pair (its members
    re-align to it in the next round); the merged-away ones are removed."""
    gone = {j for _, j, _ in merges}
    return [i for i in range(k) if i not in gone]
