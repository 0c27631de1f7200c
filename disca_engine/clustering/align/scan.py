"""The rotation scan: every subtomogram against every reference under every grid rotation
(coarse band coefficients, shifts searched), the best candidates scored at full size with a
translation search, the winner refined locally.

``align`` and ``score_matrix`` run their kernels on the stack's array backend
(``backend.py``: numpy or jax.numpy); the bookkeeping on (B, K) arrays stays numpy."""
import numpy as np

from ...pool import ordered_map
from ..augment import rotate_volumes
from .backend import NUMPY
from .fourier import energy, fourier_crop, half, shift_window, spectra
from .rotations import grid_step, perturbations
from .stack import band_coefficients, real_pair


def rotated_coarse(refs, grid, stack, wedge=True):
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


def rotated_band(stack, refs, grid):
    """(K x R, 2n) band coefficients (real pairs) of every reference turned by every grid
    rotation, on the coarse copy with the missing wedge applied: what the rotation scans of
    ``align`` and ``score_matrix`` compare subtomograms with."""
    rc = rotated_coarse(refs, grid, stack).reshape(len(refs) * len(grid), -1)
    return np.concatenate(ordered_map(
        lambda i: real_pair(band_coefficients(rc[i:i + 4096], stack.c, stack.band_idx,
                                                stack.band_scale)),
        range(0, len(rc), 4096), stack.workers))


def coarse_scores(coef, ref_band, phases, be=NUMPY):
    """(B, M) correlations of coarse subtomograms (complex band coefficients (B, n)) with
    rotated coarse references (real pairs (M, 2n)), the best over the integer shifts of
    ``phases`` (a picked particle and a reference average are rarely centred alike, and a
    rotation ranked without shifts is often wrong)."""
    return be.compiled(_coarse_scores)(coef, ref_band, phases, be=be)


def _coarse_scores(coef, ref_band, phases, be):
    best = None
    for ph in phases:
        sc = be.matmul(real_pair(coef * ph, be.xp), ref_band.T)
        best = sc if best is None else be.xp.maximum(best, sc)
    return best


def translation_scores(fp, ep, moved, m, t_max, be=NUMPY):
    """Best normalised correlation over shifts |t| <= t_max of targets (masked half spectra
    ``fp`` (B, ...) with energies ``ep``) with volumes ``moved`` (B, s, s, s) in the mask
    ``m``; returns (scores, shifts (B, 3)) with target ~ roll(moved, shift), on the host."""
    s = moved.shape[1]
    score, best = be.compiled(_best_shift, ("t_max", "be"))(fp, ep, moved, m, t_max=t_max, be=be)
    score, best = be.host(score), be.host(best)
    shifts = np.stack(np.unravel_index(shift_window(s, t_max)[best], (s, s, s)), axis=1)
    shifts = np.where(shifts > s // 2, shifts - s, shifts)
    return score, shifts


def _best_shift(fp, ep, moved, m, t_max, be):
    """(best normalised correlation, its index in the shift window) of each row."""
    xp = be.xp
    s = moved.shape[1]
    fr = spectra(moved, m, xp)
    norm = xp.sqrt(ep * energy(fr, s)) + 1e-12
    cc = xp.fft.irfftn(fp * xp.conj(fr), s=(s, s, s), axes=(1, 2, 3)).reshape(len(fr), -1)
    cc = cc[:, shift_window(s, t_max)]
    best = xp.argmax(cc, axis=1)
    return cc[xp.arange(len(fr)), best] * (s ** 3) / norm, best


def refine(fp, ep, movers, mats, m, t_max, step, levels=2, be=NUMPY):
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
        for p, turn in enumerate(perturbations(angle)):
            if p == 0 and np.isfinite(best_s).all():
                continue  # the centre was scored at the previous level
            cand = np.einsum("ij,bjk->bik", turn, centre)
            sc, sh = translation_scores(fp, ep, be.rotate(movers, cand), m, t_max, be)
            better = sc > best_s
            mats = np.where(better[:, None, None], cand, mats)
            best_s, best_t = np.where(better, sc, best_s), np.where(better[:, None], sh, best_t)
        angle /= 2
    return mats, best_s, best_t


def align(stack, refs, grid, allowed=None, top=3, t_max=3, chunk=256, weight=None):
    """Best reference, rotation (N, 3, 3), shift and score of every subtomogram: the best
    grid rotation of each of its ``top`` best references (coarse), scored with a shift
    search at full size; the winner's rotation refined locally (one level).
    ``allowed`` (N, K) bool restricts the references a subtomogram may join; ``weight``
    (K,) multiplies each reference's scores when they are compared (``disattenuation``).
    Chunks of ``chunk`` subtomograms (fewer, so that every worker has one) run in
    ``stack.workers`` threads; every subtomogram's result is the same for any chunking."""
    k = len(refs)
    be = stack.backend
    rc, phases = be.device(rotated_band(stack, refs, grid)), be.device(stack.phases)
    labels, rot = np.empty(stack.n, np.int64), np.empty((stack.n, 3, 3), np.float32)
    shift, score = np.empty((stack.n, 3), np.int64), np.empty(stack.n, np.float32)
    m = be.device(half(stack.band_f & stack.wedge))
    top = min(top, k)
    chunk = max(1, min(chunk, -(-stack.n // stack.workers)))

    def scan(a):  # each chunk writes its own rows
        rows = slice(a, a + chunk)
        labels[rows], rot[rows], shift[rows], score[rows] = _align_rows(
            stack, rows, refs, grid, rc, phases, m, top, t_max,
            None if allowed is None else allowed[rows], weight)

    ordered_map(scan, range(0, stack.n, chunk), stack.workers)
    return labels, rot, shift, score


def _align_rows(stack, rows, refs, grid, rc, phases, m, top, t_max, allowed, weight):
    """``align`` of the subtomograms ``rows`` (a slice) against the rotated coarse references
    ``rc`` (band coefficients): (labels, rotations, shifts, scores) of those rows."""
    k, be = len(refs), stack.backend
    fpc = spectra(be.device(stack.full[rows]), m, be.xp)
    epc = energy(fpc, stack.s)
    sc = coarse_scores(be.device(stack.coarse_band[rows]), rc, phases, be)
    sc = sc.reshape(-1, k, len(grid))
    best_r = sc.argmax(axis=2)                              # (B, K)
    best_s = be.host(be.xp.take_along_axis(sc, best_r[..., None], 2)[..., 0])
    best_r = be.host(best_r)
    if weight is not None:
        best_s = best_s * weight
    if allowed is not None:
        best_s = np.where(allowed, best_s, -np.inf)
    cand = np.argsort(-best_s, axis=1)[:, :top]             # (B, top)
    b = len(best_s)
    pairs = np.repeat(np.arange(b), top)
    refs_idx, rot_idx = cand.ravel(), best_r[pairs, cand.ravel()]
    rotated = be.rotate(refs[refs_idx] * stack.mask, grid[rot_idx])
    fine, _ = translation_scores(fpc[pairs], epc[pairs], rotated, m, t_max, be)
    fine = fine.reshape(b, top)
    if weight is not None:
        fine = fine * weight[cand]
    if allowed is not None:
        fine = np.where(np.take_along_axis(allowed, cand, 1), fine, -np.inf)
    sel = np.arange(b) * top + fine.argmax(axis=1)
    mats, score, shift = refine(fpc, epc, be.device(refs[refs_idx[sel]] * stack.mask),
                                grid[rot_idx[sel]], m, t_max, grid_step(len(grid)), levels=1,
                                be=be)
    return refs_idx[sel], mats, shift, score


def score_matrix(stack, refs, grid, weight=None, t_max=3):
    """(N, K) score of every subtomogram against every reference: each reference at its best
    coarse grid rotation, scored at full size with a shift search (as ``align`` scores its
    top candidates), multiplied by ``weight`` (K,) when given (``disattenuation``)."""
    k, be = len(refs), stack.backend
    rc, phases = be.device(rotated_band(stack, refs, grid)), be.device(stack.phases)
    masked = refs * stack.mask
    m = be.device(half(stack.band_f & stack.wedge))
    out = np.empty((stack.n, k), np.float32)
    chunk = max(1, min(1024 // k, -(-stack.n // stack.workers)))

    def scan(a):  # each chunk writes its own rows
        rows = slice(a, min(a + chunk, stack.n))
        fpc = spectra(be.device(stack.full[rows]), m, be.xp)
        epc = energy(fpc, stack.s)
        sc = coarse_scores(be.device(stack.coarse_band[rows]), rc, phases, be).reshape(-1, k, len(grid))
        b = len(sc)
        best_r = be.host(sc.argmax(axis=2))                      # (B, K)
        pairs = np.repeat(np.arange(b), k)
        rotated = be.rotate(np.tile(masked, (b, 1, 1, 1)), grid[best_r.ravel()])
        out[rows] = translation_scores(fpc[pairs], epc[pairs], rotated, m, t_max, be)[0].reshape(b, k)

    ordered_map(scan, range(0, stack.n, chunk), stack.workers)
    return out if weight is None else out * weight[None]
