"""The clustering method, stage after stage.

paper, fast:  network features -> PCA -> mixtures with K by BIC -> the network learns the
              labels -> repeat (``network/``).
auto:         mask -> descriptors -> seeds -> alignment -> merge test -> relabel -> junk split
              (``stages/``, numpy on the CPU) -> the network learns those labels, so that
              the saved model classifies new data (``network/``).
"""
import numpy as np

from .network import loop
from .network.labelling import FixedLabels, MixtureLabels
from .stages import alignment, descriptors, junk_split, mask, merge_test, relabel, seeds


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
    returns (records, best)."""
    state = loop.start(net, method, restart)
    if state.finished:
        return state.records, state.best
    c = method.classification
    if c is None:
        return loop.iterate(net, data, method, MixtureLabels(method, k_range),
                            lambda Z: Z, restart, state)
    view = data
    z = descriptors.describe(view, c.descriptors, method.network.batch_size, restart.seed, log)
    descriptors.save(restart.iter_dir, z)
    k = seeds.seed_k(c.seeds, view.n, k_range, method.min_cluster_size)
    if state.prev_labels is not None:   # resumed: the classification is in the checkpoint
        labelling = FixedLabels(state.prev_labels, method.feature_pca.reg_covar, k)
    else:
        labels, history = classify(view, z, method, k, restart.seed, base_seed, threads)
        history.insert(0, mask.record(view))
        labelling = FixedLabels(labels, method.feature_pca.reg_covar, k, history)
    return loop.iterate(net, view, method, labelling,
                        lambda Z: clustering_space(Z, z, c.descriptors.weight), restart, state)


def classify(particles, z, method, k, seed, base_seed, threads):
    """auto's classes from ``k`` seed clusters of the descriptors ``z`` of ``particles``
    (seen through the particle mask); returns (labels, history). ``seed`` is the restart's
    (seeds), ``base_seed`` the run's (the subsample, relabel and junk split)."""
    first = seeds.seed_labels(z, k, seed, method.min_cluster_size)
    log(f"seed clusters: K={int(first.max()) + 1}; alignment classification")
    return classes_from_seeds(particles, first, z, method, base_seed, threads)


def classes_from_seeds(particles, first, z, method, base_seed, threads, log=log):
    """The stages after the seeds: alignment, merge test, relabel, junk split (those the
    method runs); returns (labels of all subtomograms, history)."""
    c, min_size = method.classification, method.min_cluster_size
    sub = alignment.subsample(particles.n, c.alignment, base_seed, log)
    zs = z if sub is None else z[sub]
    classes = alignment.refine(particles, first if sub is None else first[sub], zs, c.alignment,
                               min_size, threads, log, indices=sub)
    classes = merge_test.merge(classes, c.merge_test, c.alignment, min_size, log)
    need_refs = sub is not None    # only a subsampled run assigns the rest to references
    if c.relabel:
        classes = relabel.relabel(classes, zs, base_seed, min_size, log, need_refs)
    if c.junk_split is not None:
        classes = junk_split.split(classes, zs, c.junk_split, base_seed, min_size, log,
                                   need_refs)
    merge_test.final_pairs(classes, zs, c.merge_test, log)
    if sub is None:
        return classes.labels, classes.history
    return alignment.assign_rest(particles, classes, c.alignment.max_n), classes.history


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
