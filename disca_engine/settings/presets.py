"""The presets: the method's settings as values of the stages."""
from dataclasses import replace

from .. import contract
from .stages import Classification, FeaturePCA, KByBic, Loop, Method, Network


def _fast_network(**changes):
    return replace(Network(widths=(8, 16, 16, 24, 24, 32), feature_dim=128, learning_rate=1e-3,
                           epochs_per_iteration=2, batch_size=32, head_epochs=30,
                           head_learning_rate=1e-3), **changes)


# paper: the method file exactly (YOPO, PCA 16, K 2..20, Nadam 1e-5 x0.95 per iteration, one
# epoch per iteration, batch 64, head 10 epochs at 1e-4, 20 iterations; K selected on at most
# 20,000 subtomograms and the winner refitted on all, the method's cost rule).
# fast: the method's structure with a small network and a schedule that leaves K = 2 at
# N = 200 (method section 10); the reference code's candidates 5,10,20 start over-split.
# auto (the default): classes found by descriptors, seeds, alignment, the merge test, the
# relabelling and the junk split (clustering/pipeline.py), then learnt by the network.
PRESETS = {
    "paper": Method(
        preset="paper", k_range=tuple(range(2, 21)),
        network=Network(widths=tuple(64 + 16 * i for i in range(10)), feature_dim=1024,
                        learning_rate=1e-5, epochs_per_iteration=1, batch_size=64,
                        head_epochs=10, head_learning_rate=1e-4),
        loop=Loop(max_iterations=20),
        feature_pca=FeaturePCA(per_subtomograms=None, per_cluster=False), k_by_bic=KByBic()),
    "fast": Method(
        preset="fast", k_range=(5, 10, 20), network=_fast_network(), loop=Loop(max_iterations=20),
        feature_pca=FeaturePCA(per_subtomograms=50, per_cluster=False), k_by_bic=KByBic()),
    "auto": Method(
        preset="auto", k_range=tuple(range(2, 25)), network=_fast_network(epochs_per_iteration=1),
        loop=Loop(max_iterations=2),
        feature_pca=FeaturePCA(per_subtomograms=None, per_cluster=True),
        classification=Classification()),
}
assert tuple(PRESETS) == contract.PRESETS
