"""Two-view relabelling after the alignment classification (setting ``align_polish``).

The alignment classification assigns each subtomogram by its best match to a reference; the
rotation-invariant descriptors used for the seeds see the same particle another way (size,
radial profile, spectrum). Where the two views disagree about a particle, neither alone is
trusted: a linear discriminant (Gaussian classes with a shared, shrunk covariance) is fitted
on the concatenation of the descriptors and of the particle's scores against every
reference, with the classification's labels, and each particle takes the class it is most
probable in, predicted by a model fitted without it (k-fold). The discriminant weighs each
view by how well it separates the classes on these data, so no threshold is set by hand.
K can only fall: a class left with fewer than ``min_size`` members is dissolved.
"""
import numpy as np

from . import alignment


def canonical(labels):
    """Labels renumbered in the order their clusters first appear: the relabelling then
    does not depend on which id each cluster happened to carry."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int64)


def references_from_labels(stack, labels, z, grid, rounds=2):
    """(refs, disattenuation weights) of the clusters ``labels``: the member nearest its
    cluster's descriptor centre, then ``rounds`` averages of the members aligned to it."""
    k = int(labels.max()) + 1
    refs = alignment._initial_references(stack, labels, z, grid, rounds - 1, lambda m: None)
    allowed = labels[:, None] == np.arange(k)[None]
    lab, rot, shift, _ = alignment.align(stack, refs, grid, allowed=allowed)
    refs, h1, h2, _ = alignment.averages(stack, lab, rot, shift, k)
    return refs, alignment.disattenuation(stack, h1, h2)


def shrunk_lda():
    """The discriminant of the relabelling: one shared covariance, Ledoit-Wolf shrinkage."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")


def two_view_labels(z, scores, labels, seed=0, folds=5, max_passes=10, min_size=5,
                    discriminant=shrunk_lda):
    """Labels from the discriminant of [descriptors, scores] (see module doc), re-fitted on
    its own labels until fewer than 1% change; returns (labels, passes). ``discriminant``
    makes an unfitted model with ``fit`` and ``predict_log_proba`` (studies try others)."""
    x = np.concatenate([_standard(z), _standard(scores)], axis=1)
    lab, passes = labels.copy(), 0
    while passes < max_passes and lab.max() >= 1:   # one class left: nothing to discriminate
        passes += 1
        new = _cross_predicted(discriminant(), x, lab, folds, seed)
        new = _dissolve_small(x, new, min_size)
        changed = float(np.mean(new != lab))
        lab = new
        if changed < 0.01:
            break
    return lab, passes


def _standard(a):
    a = np.asarray(a, np.float64)
    return (a - a.mean(0)) / (a.std(0) + 1e-12)


def _cross_predicted(model, x, labels, folds, seed):
    """Each row's most probable class under a model fitted on the other folds."""
    from sklearn.model_selection import StratifiedKFold
    k = int(labels.max()) + 1
    folds = max(2, min(folds, int(np.bincount(labels).min())))
    logp = np.full((len(x), k), -np.inf)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, labels):
        fitted = model.fit(x[train], labels[train])
        logp[np.ix_(test, fitted.classes_)] = fitted.predict_log_proba(x[test])
    return np.argmax(logp, axis=1).astype(np.int64)


def _dissolve_small(x, labels, min_size):
    """Classes under ``min_size`` members join the nearest remaining class centre;
    labels made contiguous."""
    sizes = np.bincount(labels)
    big = np.flatnonzero(sizes >= min_size)
    if len(big) == 0:
        big = np.array([int(np.argmax(sizes))])
    small = ~np.isin(labels, big)
    if small.any():
        centres = np.stack([x[labels == c].mean(0) for c in big])
        labels = labels.copy()
        labels[small] = big[np.argmin(((x[small][:, None] - centres[None]) ** 2).sum(-1), 1)]
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)

