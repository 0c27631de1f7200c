"""Stage 8: the rest. Above ``alignment.max_n`` subtomograms the classes are found, and the
network learns them, on a random subsample; the other subtomograms are classified after.
``rest.by`` = network (the default): they are classified the way the saved model classifies
new data (``predict``: the network's features, the run's PCA, each class's posterior), and
aligned to the final classes' references only where that posterior is under
``rest.unsure``. ``rest.by`` = alignment: every one is aligned. Either way every one gets
the network's features (``features.npy`` covers all N) and the network's answer is recorded.

Why: on tuning-half data the network aligned below 0.999 was as right as aligning every one
with a subsample of 500 (homogeneity 0.941 against 0.937) and more right with the default
2,000 at N = 20,000 (0.992 against 0.925), aligning 67% and 23% of them; a network pass
costs about a quarter of an alignment pass (docs/clustering-history.md).

The record (``report.json`` ``rest``) says how many went which way, how often the network
and the alignment agreed where both ran and, on simulated data, how right each was.
"""
import time

import numpy as np

from ...progress import Progress
from ..align.scan import align
from ..align.stack import AlignedStack
from ..dataset import Subset
from ..metrics import ground_truth_block
from ..network.training import compute_features


def others(n, sub):
    """Indices of the subtomograms outside the subsample ``sub``."""
    keep = np.ones(n, bool)
    keep[sub] = False
    return np.flatnonzero(keep)


def network_posteriors(net, data, indices, best, batch_size):
    """(features, PCA features, posteriors (M, K)) of the subtomograms ``indices`` under
    the network, PCA and mixture of ``best`` (the network that made the subsample's
    features)."""
    net.model.set_weights(best["weights"])
    features = compute_features(net, Subset(data, indices), batch_size,
                                progress=Progress("rest: network", len(indices)))
    Z = best["pca"].transform(features).astype(np.float32)
    return features, Z, best["mixture"].predict_proba(Z)


def aligned_labels(data, indices, refs, chunk=1024):
    """Labels of the subtomograms ``indices``: each one's best reference, read ``chunk`` at
    a time. ``refs()`` returns (stack, grid, references, disattenuation weights or None);
    it is called only here, so a run whose rest needs no alignment never makes them (wrap
    it in ``functools.cache`` to make them once)."""
    stack, grid, refs, weight = refs()
    labels = np.empty(len(indices), np.int64)
    prog = Progress("rest: alignment", len(indices))
    for a in range(0, len(indices), chunk):
        idx = indices[a:a + chunk]
        part = AlignedStack(data, coarse=stack.c, indices=idx, wedge=stack.wedge,
                            coarse_shift=stack.coarse_shift, workers=stack.workers,
                            mask=stack.mask, backend=stack.backend)
        labels[a:a + len(idx)] = align(part, refs, grid, weight=weight)[0]
        prog.update(a + len(idx))
    return labels


def classify(net, data, sub, best, refs, settings, batch_size, log, truth=None):
    """``best`` (of the subsample ``sub``) extended to all subtomograms of ``data``: their
    labels, posteriors, features and PCA features, and the ``rest`` record."""
    t0 = time.time()
    rest = others(data.n, sub)
    log(f"the rest: {len(rest)} subtomograms outside the subsample of {len(sub)}, classified "
        + ("by alignment to the classes' references (the network's answer kept for the record)"
           if settings.by == "alignment" else
           f"by the network, by alignment where its posterior is under {settings.unsure:g}"))
    features, Z, proba = network_posteriors(net, data, rest, best, batch_size)
    t_net = time.time() - t0
    net_labels = np.argmax(proba, axis=1)
    confidence = proba.max(axis=1)
    todo = (np.arange(len(rest)) if settings.by == "alignment"
            else np.flatnonzero(confidence < settings.unsure))
    labels = net_labels.copy()
    t1 = time.time()
    if len(todo):
        labels[todo] = aligned_labels(data, rest[todo], refs)
    t_align = time.time() - t1
    record = {"subsample": int(len(sub)), "rest": int(len(rest)), "by": settings.by,
              "unsure": settings.unsure, "by_network": int(len(rest) - len(todo)),
              "by_alignment": int(len(todo)),
              "agreement": (float(np.mean(labels[todo] == net_labels[todo])) if len(todo) else None),
              "seconds": {"network": round(t_net, 2), "alignment": round(t_align, 2)}}
    if truth is not None:
        record["ground_truth"] = truth_record(truth[rest], labels, net_labels, confidence, todo,
                                              settings.by == "alignment")
    agree = ("" if record["agreement"] is None else
             f"; where both ran they agree on {100 * record['agreement']:.1f}%")
    log(f"the rest: {record['by_network']} by the network ({t_net:.0f}s), "
        f"{record['by_alignment']} by alignment ({t_align:.0f}s){agree}")
    return extended(best, data.n, sub, rest, labels, proba, features, Z), record


def extended(best, n, sub, rest, labels, proba, features, Z):
    """``best`` with every per-subtomogram array covering all ``n``."""
    out = dict(best)
    full = {"labels": np.empty(n, np.int64), "posterior": np.empty(n, np.float32),
            "features": np.empty((n, features.shape[1]), np.float32),
            "features_pca": np.empty((n, Z.shape[1]), np.float32)}
    values = {"labels": labels, "posterior": proba[np.arange(len(rest)), labels],
              "features": features, "features_pca": Z}
    for key, arr in full.items():
        arr[sub] = best[key]
        arr[rest] = values[key]
        out[key] = arr
    return out


def truth_record(truth, labels, net_labels, confidence, todo, all_aligned):
    """On simulated data: how right the rest's labels are, the network's alone and the
    final; when every one was also aligned, what each posterior threshold would give."""
    out = {"final": ground_truth_block(truth, labels),
           "network": ground_truth_block(truth, net_labels)}
    if all_aligned:
        out["alignment"] = out["final"]
        out["thresholds"] = [
            {"unsure": t, "by_alignment": float(np.mean(confidence < t)),
             **ground_truth_block(truth, np.where(confidence < t, labels, net_labels))}
            for t in (0.5, 0.7, 0.9, 0.99, 0.999)]
    return out
