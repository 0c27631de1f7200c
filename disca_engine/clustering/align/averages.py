"""Class averages of aligned members (missing wedge compensated), their reliabilities,
and the references of given clusters."""
import numpy as np

from ...pool import ordered_map
from ..augment import rotate_volumes
from .fourier import energy, half, half_weights, spectra
from .rotations import rotated_wedges
from .scan import align


def averages(stack, labels, rot, shift, k):
    """(full, half1, half2, counts): averages (K, s, s, s) of the members aligned back to
    their reference's frame (shift undone, then the inverse rotation), each Fourier voxel
    divided by the number of members that measured it (missing-wedge compensation: without
    it an average of members in similar orientations carries their wedge, and attracts
    subtomograms by orientation instead of structure), and those numbers (K, s, s, s,
    unshifted Fourier layout). Halves alternate members."""
    s = stack.s
    part = np.zeros(stack.n, np.int64)   # which half-set each member averages into
    for j in range(k):
        members = np.flatnonzero(labels == j)
        part[members[1::2]] = 1
    num = np.zeros((2, k, s, s, s), np.complex64)
    den = np.zeros((2, k, s, s, s), np.float32)

    def aligned_back(a):  # the members a:a + 128 in their reference's frame, and their wedges
        idx = np.arange(a, min(a + 128, stack.n))
        vols = np.stack([np.roll(stack.full[i], -shift[i], axis=(0, 1, 2)) for i in idx])
        mats = rot[idx].transpose(0, 2, 1)
        back = rotate_volumes(vols, mats, np.random.default_rng(0), noise_std=0.0)
        return idx, np.fft.fftn(back, axes=(1, 2, 3)).astype(np.complex64), \
            rotated_wedges(stack.wedge, mats)

    starts = list(range(0, stack.n, 128))
    for g in range(0, len(starts), stack.workers):   # summed in order: the same for any workers
        for idx, f, w in ordered_map(aligned_back, starts[g:g + stack.workers], stack.workers):
            for n, i in enumerate(idx):
                num[part[i], labels[i]] += f[n]
                den[part[i], labels[i]] += w[n]

    def real(nu, de):
        return np.fft.ifftn(nu / np.maximum(de, 1.0), axes=(1, 2, 3)).real.astype(np.float32)
    counts = den.sum(0)
    return real(num.sum(0), counts), real(num[0], den[0]), real(num[1], den[1]), counts


def disattenuation(stack, half1, half2):
    """(K,) 1 / sqrt(reliability) of each average: its correlation with the noiseless
    structure is about sqrt(rel) (rel = 2 r / (1 + r) from the correlation r of its two
    half-set averages over the band), so a subtomogram's score against a noisy average (a
    small cluster) is lower than against a clean one of the same structure. Dividing by it
    (Spearman's correction for attenuation) compares subtomograms with the structures
    rather than with averages of unequal quality."""
    m = half(stack.band_f)
    fa, fb = spectra(half1 * stack.mask, m), spectra(half2 * stack.mask, m)
    w = half_weights(stack.s)
    num = (np.real(fa * np.conj(fb)) * w).sum((1, 2, 3))
    r = num / np.sqrt(energy(fa, stack.s) * energy(fb, stack.s) + 1e-20)
    rel = np.clip(2 * r / (1 + np.clip(r, 0, None)), 0.05, 1.0)
    return (1 / np.sqrt(rel)).astype(np.float32)


def initial_references(stack, seeds, z_inv, grid, rounds):
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


def class_references(stack, labels, z, grid, rounds=2):
    """(refs, (half1, half2), rot, shift) of the clusters ``labels``: the member nearest its
    cluster's descriptor centre, then ``rounds`` averages of the members aligned to it;
    each member's pose on its cluster's average."""
    k = int(labels.max()) + 1
    refs = initial_references(stack, labels, z, grid, rounds - 1)
    allowed = labels[:, None] == np.arange(k)[None]
    lab, rot, shift, _ = align(stack, refs, grid, allowed=allowed)
    refs, h1, h2, _ = averages(stack, lab, rot, shift, k)
    return refs, (h1, h2), rot, shift


def references_from_labels(stack, labels, z, grid, rounds=2):
    """(refs, disattenuation weights) of the clusters ``labels`` (``class_references``)."""
    refs, halves = class_references(stack, labels, z, grid, rounds)[:2]
    return refs, disattenuation(stack, *halves)
