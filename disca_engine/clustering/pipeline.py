"""The clustering method, stage after stage.

paper, fast:  network features -> PCA -> mixtures with K by BIC -> the network learns the
              labels -> repeat (``network/``).
auto:         mask -> descriptors -> seeds -> alignment -> merge test -> relabel -> junk split
              (``stages/``, numpy on the CPU) -> the network learns those labels, so that
              the saved model classifies new data (``network/``).
"""
from dataclasses import replace
from functools import cache, partial

import numpy as np

from .align.averages import class_references, disattenuation
from .dataset import Subset
from .network import loop
from .network.labelling import FixedLabels, MixtureLabels
from .stages import alignment, descriptors, junk_split, mask, merge_test, relabel, rest, seeds


def log(message):
    print(message, flush=True)


def network_input(particles, method):
    """What the network sees: auto's masked and cropped boxes (the classification's view:
    training then costs what the particle's size needs, not the box's), else the boxes."""
    if method.classification is None:
        return particles
    return mask.apply(particles, method.classification.mask, log)


def run(net, data, method, restart, k_range, base_seed, threads):
    """One restart of the method (``network.loop.Restart``) on ``data`` (``network_input``);
    returns (records, best). Above ``alignment.max_n`` the classes are found and learnt on
    a subsample: ``best`` is the subsample's, and ``finish`` classifies the rest (only that
    of the restart the run keeps)."""
    state = loop.start(net, method, restart)
    c = method.classification
    sub = None if c is None else alignment.subsample(data.n, c.alignment, base_seed, log)
    if state.finished and sub is None:
        return state.records, state.best
    if c is None:
        return loop.iterate(net, data, method, MixtureLabels(method, k_range),
                            lambda Z: Z, restart, state)
    z = descriptors.describe(data, c.descriptors, method.network.batch_size, restart.seed, log)
    descriptors.save(restart.iter_dir, z)      # of all N: the report embeds every one
    view, zv, run_sub = data, z, restart
    if sub is not None:
        view, zv = Subset(data, sub), z[sub]
        run_sub = replace(restart, truth=None if restart.truth is None else restart.truth[sub])
    classes = None
    if state.finished:
        records, best = state.records, state.best
    else:
        k = seeds.seed_k(c.seeds, view.n, k_range, method.min_cluster_size)
        if state.prev_labels is not None:   # resumed: the classification is in the checkpoint
            labelling = FixedLabels(state.prev_labels, method.feature_pca.reg_covar, k)
        else:
            classes = classify(view, zv, method, k, restart.seed, base_seed, threads)
            history = [mask.record(view)] + classes.history
            labelling = FixedLabels(classes.labels, method.feature_pca.reg_covar, k, history)
        records, best = loop.iterate(net, view, method, labelling,
                                     lambda Z: clustering_space(Z, zv, c.descriptors.weight),
                                     run_sub, state)
    if sub is None:
        return records, best
    refs = cache(lambda: rest_references(classes, view, best["labels"], zv, c, threads))
    pending = dict(best, rest=partial(rest.classify, net, data, sub, best, refs, c.rest,
                                      method.network.batch_size, log, restart.truth))
    return records, pending


def finish(best):
    """``best`` of the restart the run keeps, extended to every subtomogram when its classes
    were found on a subsample (``stages/rest.py``; the record in ``best["rest"]``)."""
    if not callable(best.get("rest")):
        return best
    full, record = best["rest"]()
    full["rest"] = record
    return full


def rest_references(classes, view, labels, z, c, threads):
    """(stack, grid, refs, weights) the rest is aligned to: the final classes' (made by the
    classification's last stage) or, in a resumed run, remade from the subsample's labels."""
    if classes is None or classes.refs is None:
        stack, grid = alignment.aligned_data(view, c.alignment, threads)
        refs, halves = class_references(stack, labels, z, grid)[:2]
    else:
        stack, grid, refs, halves = classes.stack, classes.grid, classes.refs, classes.halves
    weight = disattenuation(stack, *halves) if c.alignment.disattenuate else None
    return stack, grid, refs, weight


def classify(particles, z, method, k, seed, base_seed, threads):
    """auto's classes from ``k`` seed clusters of the descriptors ``z`` of ``particles``
    (seen through the particle mask); returns the final ``Classes``. ``seed`` is the
    restart's (seeds), ``base_seed`` the run's (relabel and junk split)."""
    first = seeds.seed_labels(z, k, seed, method.min_cluster_size)
    log(f"seed clusters: K={int(first.max()) + 1}; alignment classification")
    return classes_from_seeds(particles, first, z, method, base_seed, threads)


def classes_from_seeds(particles, first, z, method, base_seed, threads, log=log):
    """The stages after the seeds: alignment, merge test, relabel, junk split (those the
    method runs); returns the final ``Classes`` (with their references when K > 1)."""
    c, min_size = method.classification, method.min_cluster_size
    classes = alignment.refine(particles, first, z, c.alignment, min_size, threads, log)
    classes = merge_test.merge(classes, c.merge_test, c.alignment, min_size, log)
    if c.relabel:
        classes = relabel.relabel(classes, z, base_seed, min_size, log)
    if c.junk_split is not None:
        classes = junk_split.split(classes, z, c.junk_split, base_seed, min_size, log)
    return merge_test.final_pairs(classes, z, c.merge_test, log)


def clustering_space(Z, z, weight):
    """Where DDBI compares iterations: the network features beside the descriptors, each
    half of the dimension budget. The descriptors do not collapse onto the labels as
    trained features do."""
    if z is None or weight <= 0:
        return Z
    d = max(2, Z.shape[1] // 2)
    zs = Z[:, :d] / (Z[:, :d].std() + 1e-9)
    zi = z[:, :max(2, Z.shape[1] - d)]
    return np.concatenate([zs, weight * zi / (zi.std() + 1e-9)], axis=1).astype(np.float32)
