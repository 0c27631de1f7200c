"""What each final cluster's average is worth, measured as subtomogram averaging does: the
members aligned to their cluster's average, two half-set averages refined apart, their
Fourier shell correlation (the resolution at 0.143) and reliability, and how much better
the members match the average than the same average with its Fourier phases randomised
(the null ratio: about 1 for boxes that hold nothing of a common structure).

Two numbers of the average's content tell the junk that averages well from structures:
gold beads are far denser than protein (the average explains most of its members'
variance: ``signal_fraction``), membranes and edges are sheets through the box (the
average's density has one thin principal axis: ``flatness``).

Above ``MAX_MEMBERS`` members a cluster is measured on a random subset of that size (the
alignment cost grows with N; the FSC of a larger subset would only be better).

The boxes are measured in a cube of ``MEASURE_RATIO`` particle diameters about their centre
(``measured_view``): the signal fraction, flatness and null ratio depend on how much
background the measured sphere holds, so the rule tuned on 24^3 boxes of 14-15 voxel
particles sees the same share at every box size, and its cost follows the particle's size
rather than the box's (at 64^3 the whole boxes took 294 s of a 524 s run)."""
import time

import numpy as np

from .align.averages import class_references
from .align.evidence import independent_halves
from .align.fsc import band_reliability, fsc_curve, resolution
from .align.mask import CentredCrop, centred_size
from .align.scan import align
from .stages.alignment import aligned_data
from .stages.junk_split import phase_randomised

MAX_MEMBERS = 300
# measured cube over the particle mask's diameter: the tuning sets' (24^3 for 15 voxels)
MEASURE_RATIO = 1.6


def measured_view(particles, radius):
    """The boxes the clusters are measured on: ``particles`` cropped to ``MEASURE_RATIO``
    diameters of a particle of ``radius`` voxels (the run's mask; whole boxes when None or
    when the box is smaller), with the box's parity so that the centre stays the centre."""
    if radius is None:
        return particles
    size = centred_size(particles.box, MEASURE_RATIO * 2 * radius)
    return particles if size == particles.box else CentredCrop(particles, size)


def measured_subset(labels, seed, max_members=MAX_MEMBERS):
    """Sorted indices of the subtomograms measured: every member of a cluster up to
    ``max_members``, a random subset of that size above it."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) > max_members:
            members = rng.choice(members, max_members, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep))


def measure(particles, labels, z, alignment, threads, seed, log, max_members=MAX_MEMBERS):
    """{cluster number (0-based): ``measures``} of every cluster with 2 members or more.
    ``z``: (N, d) features, to pick each cluster's first reference (its most central
    member)."""
    t0 = time.time()
    labels = np.asarray(labels, np.int64)
    present = [int(c) for c in np.unique(labels) if np.sum(labels == c) >= 2]
    if not present:
        return {}
    idx = measured_subset(labels, seed, max_members)
    idx = idx[np.isin(labels[idx], present)]
    lab = np.searchsorted(present, labels[idx])          # contiguous 0..len(present)-1
    stack, grid = aligned_data(particles, alignment, threads, idx)
    refs, halves, _, _ = class_references(stack, lab, np.asarray(z)[idx], grid)
    h1, h2 = independent_halves(stack, grid, lab, halves)
    rng = np.random.default_rng(seed)
    out = {c: measures(stack.subset(np.flatnonzero(lab == j)), grid, refs[j], h1[j], h2[j],
                       particles.voxel_size, rng)
           for j, c in enumerate(present)}
    log(f"cluster quality: half-set FSC, null ratio and content of {len(present)} clusters "
        f"({len(idx)} subtomograms, {time.time() - t0:.1f}s)")
    return out


def measures(members, grid, average, half1, half2, voxel_size, rng):
    """One cluster's numbers: ``fsc`` (shells 1 .. box/2), ``resolution_A`` (None: FSC
    below 0.143 from the first shell) and ``nyquist_limited``, ``reliability``,
    ``mean_score``, ``mean_null_score`` and their ``null_ratio``, ``signal_fraction``,
    ``flatness``, ``measured`` (members used). ``members``: the cluster's aligned stack."""
    mask = members.mask
    own = align(members, average[None], grid)[3]
    null = align(members, phase_randomised(average, rng)[None], grid)[3]
    curve = fsc_curve(half1, half2, mask)
    res, nyquist = resolution(curve, members.s, voxel_size)
    return {"fsc": [round(float(v), 4) for v in curve], "resolution_A": res,
            "nyquist_limited": nyquist,
            "reliability": round(band_reliability(half1, half2, mask), 4),
            "mean_score": round(float(own.mean()), 4),
            "mean_null_score": round(float(null.mean()), 4),
            "null_ratio": round(float(own.mean() / max(float(null.mean()), 1e-6)), 4),
            "signal_fraction": round(signal_fraction(average, members.full, mask), 4),
            "flatness": round(flatness(average, mask), 4), "measured": int(members.n)}


def signal_fraction(average, members, mask):
    """Variance of the average over the mean variance of its members, inside ``mask``
    (> 0.5): the share of a member that the average explains, about SNR / (1 + SNR) of one
    box. Protein in one cryo-ET subtomogram stays well under SNR 1; gold beads do not."""
    inside = mask > 0.5
    box_var = float(np.mean([m[inside].var() for m in members]))
    return float(average[inside].var()) / max(box_var, 1e-12)


def flatness(average, mask):
    """1 - (smallest / middle principal second moment) of the average's squared density
    (mean removed, inside ``mask``): near 1 for a sheet (membrane, edge), near 0 for a
    compact particle or a rod."""
    s = average.shape[-1]
    v = (average - (average * mask).sum() / mask.sum()) * mask
    w = (v ** 2).ravel()
    ax = np.arange(s) - (s - 1) / 2.0
    xyz = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    d = xyz - (xyz * w[:, None]).sum(0) / max(w.sum(), 1e-20)
    moments = np.linalg.eigvalsh((d * w[:, None]).T @ d / max(w.sum(), 1e-20))
    return float(1.0 - moments[0] / max(moments[1], 1e-12))


def report_block(particles, labels, z, method, options, records, log, radius=None):
    """The report's cluster table (``clusters``, ``verdicts.cluster_table``), the rule it
    used (``verdict_rule``) and the final pairs the merge test nearly joined
    (``near_pairs``, auto only: other methods have no merge test). ``radius``: the run's
    particle mask (voxels), None for presets without one (whole boxes measured)."""
    from .. import settings as S
    from . import verdicts
    c = method.classification
    alignment = c.alignment if c is not None else S.Alignment()
    view = measured_view(particles, radius)
    quality = measure(view, labels, z, alignment, options.threads, options.seed, log)
    sizes = np.bincount(labels, minlength=int(labels.max()) + 1).tolist()
    block = {"clusters": verdicts.cluster_table(quality, sizes, particles.voxel_size),
             "verdict_rule": {"min_null_ratio": verdicts.MIN_NULL_RATIO,
                              "min_reliability": verdicts.MIN_RELIABILITY,
                              "max_signal_fraction": verdicts.MAX_SIGNAL,
                              "max_flatness": verdicts.MAX_FLATNESS, "fsc_threshold": 0.143,
                              "max_members": MAX_MEMBERS, "measured_box": int(view.box)}}
    pairs = final_pair_records(records)
    if c is not None and pairs is not None:
        block["near_pairs"] = verdicts.near_pairs(pairs, c.merge_test.threshold,
                                                  c.merge_test.evidence)
    return block


def final_pair_records(records):
    """The merge test's ``final_pairs`` records of a run's iterations (None without)."""
    for rec in records or []:
        for step in rec.get("classification") or []:
            if "final_pairs" in step:
                return step["final_pairs"]
    return None
