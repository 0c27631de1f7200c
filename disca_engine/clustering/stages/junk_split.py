"""Stage 6: the junk split, after the relabelling (settings ``JunkSplit``).

Picked particles include boxes of nothing in particular (background noise peaks, edges,
fragments). They match every reference poorly, so they end wherever they match least badly,
and a class that takes many of them can have them as its majority: its structure is then
lost in the class table. Within one class they stand out by how well they match the class
average: a structure's members form one group of scores, the junk a second, lower one.

For each class of at least ``2 x min_size`` members, its members are aligned to their own
average (made from them alone) and a Gaussian mixture with one and with two components is
fitted to their scores; where BIC prefers two components and each holds ``min_size``
members or more, the scores form two groups. A structure's own members can do that too
(orientations the missing wedge hides, particles near others), so the lower group is
compared with noise: the same members scored against the average with its Fourier phases
randomised (same power spectrum, no structure: their null score). The lower group becomes a
class of its own when

- it matches the average little better than it matches noise: its mean score lies under
  ``position`` (0.2) of the way from its mean null score to the upper group's mean; or
- its boxes hold another kind of content: their mean null score is under
  ``spectrum`` (0.8) of the upper group's (a box of the class's structure fits
  the average's power spectrum as well as the upper group does; empty boxes and membrane
  patches fit it less), while it matches the average at most half as well
  (``SPECTRUM_POSITION``). At SNR 0.03 a structure's lower group can lie at 0.25-0.28,
  which the first test alone cannot tell from junk mixed with a few particles; its null
  ratio stays at 0.92-1.05 (tuning half, docs/clustering-history.md).
"""
import time

import numpy as np

from ..align.averages import references_from_labels
from ..align.scan import align
from .state import Classes

# The spectral test applies only to a lower group matching the average at most half as well
# as the upper group: one matching it better is the structure, whatever its boxes hold.
SPECTRUM_POSITION = 0.5


def own_scores(stack, labels, z, grid):
    """((N,) scores, (K, s, s, s) class averages): each subtomogram's score against the
    average of its own class, made from the class's members alone (the member nearest their
    descriptor centre, then two averages of them aligned to it: ``references_from_labels``
    of one class; each class costs one reference, not K)."""
    out = np.empty(stack.n, np.float32)
    refs = np.empty((int(labels.max()) + 1,) + stack.full.shape[1:], np.float32)
    for c in range(len(refs)):
        members = np.flatnonzero(labels == c)
        sub = stack.subset(members)
        refs[c] = references_from_labels(sub, np.zeros(len(members), np.int64), z[members],
                                         grid)[0][0]
        out[members] = align(sub, refs[c:c + 1], grid)[3]
    return out, refs


def two_groups(scores, min_size, seed=0):
    """Boolean mask of the lower of two groups of ``scores`` when BIC prefers two Gaussian
    components to one and each group has ``min_size`` members; None otherwise."""
    from sklearn.mixture import GaussianMixture
    x = np.asarray(scores, np.float64).reshape(-1, 1)
    if len(x) < 2 * min_size or np.ptp(x) == 0:
        return None
    one = GaussianMixture(1).fit(x)
    two = GaussianMixture(2, n_init=5, random_state=seed).fit(x)
    if two.bic(x) >= one.bic(x):
        return None
    low = two.predict(x) == int(np.argmin(two.means_.ravel()))
    if min(low.sum(), (~low).sum()) < min_size:
        return None
    return low


def null_scores(stack, labels, refs, grid, seed):
    """(N,) each subtomogram's score against its class average with the Fourier phases
    randomised (the same power spectrum, no structure): what the rotation and shift search
    reaches on a box that holds nothing of the structure."""
    rng = np.random.default_rng(seed)
    out = np.empty(stack.n, np.float32)
    for c in range(len(refs)):
        members = np.flatnonzero(labels == c)
        out[members] = align(stack.subset(members),
                                       phase_randomised(refs[c], rng)[None], grid)[3]
    return out


def phase_randomised(vol, rng):
    """``vol`` with the phases of white noise and its own Fourier amplitudes."""
    shape = vol.shape
    amp = np.abs(np.fft.rfftn(vol))
    phase = np.angle(np.fft.rfftn(rng.standard_normal(shape)))
    return np.fft.irfftn(amp * np.exp(1j * phase), shape, axes=(0, 1, 2)).astype(np.float32)


def split_low_groups(scores, labels, min_size, seed, position, spectrum, null=None):
    """(labels, splits): each class whose members' ``scores`` form two groups (``two_groups``)
    gives its lower group a new class id (after the existing ones). With ``null``
    (``null_scores``), only a lower group that looks like junk is split off: its mean score
    under ``position`` of the way from its mean null score (0) to the upper group's mean (1),
    or (``spectrum`` > 0) its mean null score under ``spectrum`` x the upper group's with a
    position under ``SPECTRUM_POSITION`` (module docstring). ``splits`` lists (class, members
    kept, members split off, mean score kept, mean score split off, position, null ratio),
    the last two None without ``null``."""
    out, splits = labels.copy(), []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        low = two_groups(scores[members], min_size, seed)
        if low is None:
            continue
        hi_mean, lo_mean = float(scores[members[~low]].mean()), float(scores[members[low]].mean())
        where = ratio = None
        if null is not None:
            floor = float(null[members[low]].mean())
            where = (lo_mean - floor) / max(hi_mean - floor, 1e-6)
            ratio = floor / max(float(null[members[~low]].mean()), 1e-6)
            other_content = spectrum > 0 and ratio < spectrum and where < SPECTRUM_POSITION
            if where >= position and not other_content:
                continue
        out[members[low]] = out.max() + 1
        splits.append((c, int((~low).sum()), int(low.sum()), hi_mean, lo_mean, where, ratio))
    return out, splits


def split(classes, z, settings, seed, min_size, log):
    """``classes`` with their junk groups split off (``settings.JunkSplit``); the references
    are kept only where no group split off."""
    t1 = time.time()
    stack, grid, labels = classes.stack, classes.grid, classes.labels
    scores, own = own_scores(stack, labels, z, grid)
    null = null_scores(stack, labels, own, grid, seed=seed)
    new, splits = split_low_groups(scores, labels, min_size, seed, settings.position,
                                   settings.spectrum, null=null)
    sizes = np.bincount(new).tolist()
    classes.history.append({"junk_split": True, "k": len(sizes), "splits": splits,
                            "sizes": sizes, "seconds": round(time.time() - t1, 2)})
    parts = "; ".join(f"class {c + 1}: {n_hi} kept (mean score {s_hi:.2f}), {n_lo} split off "
                      f"({s_lo:.2f}, {pos:.2f} of the way from noise, null ratio {ratio:.2f})"
                      for c, n_hi, n_lo, s_hi, s_lo, pos, ratio in splits) or "none split"
    log(f"  junk split: K={len(sizes)} ({parts}) ({time.time() - t1:.1f}s)")
    return Classes(stack, grid, new, None if splits else classes.refs, None, classes.history)
