"""How alike two class averages are: the best relative pose, and the per-shell agreement
over what two averages of one structure reach (the merge test's ratio)."""
import numpy as np

from ...pool import ordered_map
from ..augment import rotate_volumes
from .fourier import energy, fourier_crop, half, shell_corr, shell_index, spectra, unit_filtered
from .rotations import grid_step
from .scan import refine, rotated_coarse, translation_scores


def best_pose(stack, ref_i, ref_j, rc_j, plain_i, grid, pose_shift, top=4, t_max=4):
    """Reference j turned and shifted onto reference i: the ``top`` coarse rotations, each
    scored with a coarse shift search up to ``pose_shift`` coarse voxels (two averages are
    rarely centred alike; ranked without shifts, the right rotation was often not among
    the top ones), then scored at full size and the best refined locally."""
    m = half(stack.band_f)
    fp = spectra(ref_i[None] * stack.mask, m)
    ep = energy(fp, stack.s)
    if pose_shift > 0:
        c, bc = stack.c, half(stack.band_c)
        fpc = spectra(plain_i.reshape(1, c, c, c), bc)
        rot = rc_j.reshape(-1, c, c, c)
        coarse, _ = translation_scores(np.repeat(fpc, len(rot), 0),
                                       np.repeat(energy(fpc, c), len(rot)), rot, bc, pose_shift)
    else:
        coarse = rc_j @ plain_i
    cand = np.argsort(-coarse)[:top]
    mover = ref_j[None] * stack.mask
    rotated = rotate_volumes(np.repeat(mover, len(cand), 0), grid[cand], np.random.default_rng(0),
                             noise_std=0.0)
    fp, ep = np.repeat(fp, len(cand), 0), np.repeat(ep, len(cand))
    fine, _ = translation_scores(fp, ep, rotated, m, t_max)
    b = int(np.argmax(fine))
    one = slice(b, b + 1)
    mats, _, shifts = refine(fp[one], ep[one], mover, grid[cand[b]][None], m, t_max,
                             grid_step(len(grid)))
    moved = rotate_volumes(mover, mats, np.random.default_rng(0), noise_std=0.0)[0]
    return np.roll(moved, shifts[0], axis=(0, 1, 2))


def pair_ratios(stack, refs, half1, half2, grid, pose_shift, pose_top):
    """(K, K) structural agreement of every two references, in [about -1, 1]: on each
    Fourier shell, their correlation after the best rotation and shift (``best_pose``
    among the ``pose_top`` best coarse rotations) divided by what two averages of one
    structure would reach there (the geometric mean of their reliabilities, from half-set
    correlations by Spearman-Brown), averaged over shells with weights N_shell x rel_i x
    rel_j (the shells both averages measure well). Two averages of one structure score
    about 1 at any noise level; the score of two structures is their true similarity at
    the resolution the data support."""
    k, s = len(refs), stack.s
    n_sh = int(stack.k_max)
    shells = shell_index(s, n_sh)
    count = np.bincount(shells.ravel(), minlength=n_sh + 1)[1:]
    m = stack.mask
    half_r = np.array([shell_corr(np.fft.fftn(a * m), np.fft.fftn(b * m), shells, n_sh)
                       for a, b in zip(half1, half2)])
    half_r = np.clip(half_r, 1e-3, 0.999)
    rel = 2 * half_r / (1 + half_r)                                   # (K, shells)
    rc = rotated_coarse(refs, grid, stack, wedge=False)
    plain = unit_filtered(fourier_crop(refs * m, stack.c), stack.band_c)
    full = [np.fft.fftn(r * m) for r in refs]

    def agreement(pair):
        i, j = pair
        moved = best_pose(stack, refs[i], refs[j], rc[j], plain[i], grid, pose_shift, pose_top)
        cc = shell_corr(full[i], np.fft.fftn(moved * m), shells, n_sh)
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


def merged_labels(labels, groups):
    """Labels after merging each (i, j) pair, contiguous 0..K'-1."""
    lab = labels.copy()
    for i, j, _ in groups:
        lab[lab == j] = i
    _, lab = np.unique(lab, return_inverse=True)
    return lab.astype(np.int64)


def kept_after_merging(merges, k):
    """Indices of the references kept after merging: the first of each pair (its members
    re-align to it in the next round); the merged-away ones are removed."""
    gone = {j for _, j, _ in merges}
    return [i for i in range(k) if i not in gone]
