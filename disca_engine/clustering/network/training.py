"""What one iteration does with the network: features of all subtomograms, a new head
fitted on fixed features, and the whole network trained on the subtomograms plus one
randomly rotated copy each (method section 5)."""
import numpy as np


def rng(seed, iteration, purpose):
    """The generator of one purpose of one iteration: a resumed run repeats an
    uninterrupted one exactly."""
    return np.random.default_rng([int(seed), int(iteration), int(purpose)])


def compute_features(net, particles, batch_size, progress=None):
    """(N, feature_dim) features of every subtomogram, inference mode, streamed in batches
    (``progress``: a ``progress.Progress`` told how many are done)."""
    out = np.empty((particles.n, net.settings.feature_dim), np.float32)
    a = 0
    for batch in particles.iter_batches(None, batch_size):
        out[a:a + len(batch)] = net.features(batch)
        a += len(batch)
        if progress is not None:
            progress.update(a)
    return out


def train_head(net, features, labels, k, alpha, settings, seed, it):
    """New Dense(K) head fitted alone on the fixed features (they do not change here);
    returns the fraction of subtomograms the head puts in their own cluster."""
    from ..labels import smooth_targets
    net.replace_head(k, int(rng(seed, it, 4).integers(2 ** 31)))
    targets = smooth_targets(labels, k, alpha)
    order_rng = rng(seed, it, 5)
    bs = settings.batch_size
    for _ in range(settings.head_epochs):
        order = order_rng.permutation(len(labels))
        for a in range(0, len(order), bs):
            idx = order[a:a + bs]
            net.train_head_batch(features[idx], targets[idx])
    return float(np.mean(np.argmax(net.predict_head(features)[:, :k], axis=1) == labels))


def train_network(net, particles, labels, k, alpha, settings, seed, it):
    """Epochs over the subtomograms + one fresh random rotation of each, shuffled; returns
    the mean training loss."""
    from ..augment import random_rotation_matrices, rotate_volumes
    from ..labels import smooth_targets
    n, bs = particles.n, settings.batch_size
    targets = smooth_targets(labels, k, alpha)
    losses = []
    for epoch in range(settings.epochs_per_iteration):
        epoch_rng = rng(seed, it, 100 + epoch)
        matrices = random_rotation_matrices(n, epoch_rng)
        order = epoch_rng.permutation(2 * n)               # >= n: the rotated copy of (i - n)
        for a in range(0, 2 * n, bs):
            ids = order[a:a + bs]
            src = ids % n
            batch = next(particles.iter_batches(src, len(src)))
            rotated = ids >= n
            if rotated.any():
                batch[rotated] = rotate_volumes(batch[rotated], matrices[src[rotated]], epoch_rng)
            losses.append(net.train_batch(batch, targets[src]))
    return float(np.mean(losses)) if losses else float("nan")
