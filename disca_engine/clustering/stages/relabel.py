"""Stage 5: relabel, the two-view relabelling after the alignment classification.

The alignment assigns each subtomogram by its best match to a reference; the
rotation-invariant descriptors see the same particle another way (size, radial profile,
spectrum). Where the two views disagree about a particle, neither alone is trusted: a
linear discriminant (Gaussian classes with a shared, shrunk covariance) is fitted on the
concatenation of the descriptors and of the particle's scores against every reference,
with the classification's labels, and each particle takes the class it is most probable
in, predicted by a model fitted without it (k-fold). The discriminant weighs each view by
how well it separates the classes on these data, so no threshold is set by hand. K can
only fall: a class left with fewer than ``min_size`` members is dissolved.
"""
import time

import numpy as np

from ..align.averages import references_from_labels
from ..align.scan import score_matrix
from ..labels import contingency
from .state import Classes


def relabel(classes, z, seed, min_size, log):
    """``classes`` relabelled (without references: the final classes' are made by
    ``merge_test.final_pairs``)."""
    t1 = time.time()
    stack, grid = classes.stack, classes.grid
    labels = canonical(classes.labels)
    refs, weight = references_from_labels(stack, labels, z, grid)
    new, passes = two_view_labels(z, score_matrix(stack, refs, grid, weight), labels, seed=seed,
                                  min_size=min_size)
    changed = moved(labels, new)
    sizes = np.bincount(new).tolist()
    classes.history.append({"relabel": True, "k": len(sizes), "changed": changed,
                            "passes": passes, "sizes": sizes,
                            "seconds": round(time.time() - t1, 2)})
    log(f"  relabel (two views): K={len(sizes)} changed={100 * changed:.1f}% in {passes} "
        f"pass(es) sizes=[{','.join(map(str, sizes))}] ({time.time() - t1:.1f}s)")
    return Classes(stack, grid, new, None, None, classes.history)


def moved(old, new):
    """Fraction of subtomograms outside the old cluster that contributes most to their new
    one (well defined when K changed, unlike a one-to-one matching of the ids)."""
    return 1.0 - contingency(new, old).max(1).sum() / len(new)


def canonical(labels):
    """Labels renumbered in the order their clusters first appear: the relabelling then
    does not depend on which id each cluster happened to carry."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int64)


def shrunk_lda():
    """The discriminant of the relabelling: one shared covariance, Ledoit-Wolf shrinkage."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")


def two_view_labels(z, scores, labels, seed, min_size, folds=5, max_passes=10,
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

