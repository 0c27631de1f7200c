"""The disk a ``cluster`` or ``predict`` run will fill, estimated from N, the box and the
settings before a voxel is read (``io.outdir.check_free_space`` compares it with the free
space). Upper bounds, so that a run refused nothing it could have done only by a little:
every restart's checkpoint is kept, twice while a new one is swapped in, with the optimizer's
two moments beside the weights and the features at full width (before PCA)."""
import os

from .. import contract
from ..io.outdir import BLOCK

SMALL_FILES = 1 << 20  # STAR and JSON headers, plots


def weight_count(widths, feature_dim, k_max):
    """Parameters of the YOPO classifier (``network/yopo.py``): each 3x3x3 convolution with
    its bias and batch norm, the taps' batch norm, the feature layer and the head."""
    n, c_in = 0, 1
    for w in widths:
        n += 27 * c_in * w + 5 * w
        c_in = w
    taps = sum(widths)
    return n + 4 * taps + (taps + 1) * feature_dim + (feature_dim + 1) * k_max


def stack_bytes(n, box):
    """The normalised float32 stack cache: N x box^3 x 4 bytes."""
    return n * box ** 3 * 4


def _cache_need(cache_dir, outdir, n, box):
    flag, where = ("--cache-dir", cache_dir) if cache_dir else ("--output", outdir)
    return (flag, where, stack_bytes(n, box) + BLOCK, f"stack cache {n} x {box}^3 x 4 bytes")


def bytes_held(folder):
    """Bytes of the files under ``folder`` (0 when there is none)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def cluster_needs(outdir, n, box, method, options, k_max):
    """(flag, path, bytes, what) of the stack cache, the checkpoints and the results. A
    resumed run rewrites the files its folder holds: their bytes are counted as free."""
    net = method.network
    weights = 4 * weight_count(net.widths, net.feature_dim, k_max)
    features = n * net.feature_dim * 4  # features.npy; features_pca.npy is at most as large
    best = weights + 2 * features + 8 * n + 4 * net.feature_dim ** 2 + 8 * BLOCK
    checkpoints = options.restarts * 2 * (3 * weights + 8 * n + best)
    iterations = options.restarts * method.loop.max_iterations * (n * (net.feature_dim * 4 + 8) + 2 * BLOCK)
    if method.classification is not None:  # auto keeps each restart's descriptors.npy
        iterations += options.restarts * (n * 4 * method.classification.descriptors.components + BLOCK)
    results = (iterations + 3 * weights + 2 * features + k_max * (stack_bytes(1, box) + BLOCK)
               + 512 * n + SMALL_FILES)
    if options.resume:  # the checkpoints and results written so far are rewritten in place
        held = bytes_held(outdir)
        checkpoints, results = max(0, checkpoints - held), max(0, results - max(0, held - checkpoints))
    return [_cache_need(options.cache_dir, outdir, n, box),
            ("--output", outdir, checkpoints,
             f"checkpoints of {options.restarts} restart(s), 2 x (weights, optimizer, best features)"),
            ("--output", outdir, results,
             f"model, features, {method.loop.max_iterations} iterations' labels and class averages")]


def predict_needs(outdir, cache_dir, n, box, k, star_bytes):
    """(flag, path, bytes, what) of the stack cache and of averages/, clusters.star."""
    results = k * (stack_bytes(1, box) + BLOCK) + 2 * star_bytes + 64 * n + SMALL_FILES
    return [_cache_need(cache_dir, outdir, n, box),
            ("--output", outdir, results, f"{k} class averages and {contract.CLUSTERS_STAR}")]
