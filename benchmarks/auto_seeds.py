"""The first two stages of the default method (descriptors, seed clusters), as the benchmarks
and studies run them before timing or studying the later stages (``pipeline.classify``
does the same inside a run)."""
from disca_engine.clustering.stages import descriptors, seeds


def quiet(message):
    """A stage's log that prints nothing: the script prints its own lines."""


def descriptors_of(particles, method, seed, log=quiet):
    """(N, d) rotation-invariant descriptors with the settings of ``method`` (auto's)."""
    return descriptors.describe(particles, method.classification.descriptors,
                                method.network.batch_size, seed, log)


def seed_clusters(z, method, seed):
    """The seed labels of the descriptors ``z``: K from the preset's own K range, as before
    the run caps it at what N supports (``seed_k`` caps at N / min_cluster_size anyway)."""
    k = seeds.seed_k(method.classification.seeds, len(z), method.k_range,
                     method.min_cluster_size)
    return seeds.seed_labels(z, k, seed, method.min_cluster_size)
