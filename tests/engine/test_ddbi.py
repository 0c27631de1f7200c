import numpy as np
import pytest

from disca_engine.clustering.ddbi import ddbi


def loop_ddbi(X, labels):
    """Straightforward transcription of the formula (no ridge)."""
    classes = sorted(set(labels.tolist()))
    c, inv, t = {}, {}, {}
    for k in classes:
        m = X[labels == k]
        c[k] = m.mean(axis=0)
        inv[k] = np.linalg.inv(np.cov(m, rowvar=False))
        t[k] = np.mean([(x - c[k]) @ inv[k] @ (x - c[k]) for x in m])
    total = 0.0
    for i in classes:
        worst = -np.inf
        for j in classes:
            if j == i:
                continue
            dij = (c[i] - c[j]) @ inv[i] @ (c[i] - c[j])
            dji = (c[j] - c[i]) @ inv[j] @ (c[j] - c[i])
            worst = max(worst, (t[i] + t[j]) / (dij + dji))
        total += worst
    return total / len(classes)


def test_hand_computed_two_clusters():
    # 1-D, cluster A = {0, 2} (mean 1, var 2), cluster B = {10, 14} (mean 12, var 8)
    X = np.array([[0.0], [2.0], [10.0], [14.0]])
    labels = np.array([0, 0, 1, 1])
    t_a = np.mean([(0 - 1) ** 2 / 2, (2 - 1) ** 2 / 2])        # 0.5
    t_b = np.mean([(10 - 12) ** 2 / 8, (14 - 12) ** 2 / 8])    # 0.5
    d_ab, d_ba = 11 ** 2 / 2, 11 ** 2 / 8
    expected = (t_a + t_b) / (d_ab + d_ba)                    # same for both clusters
    assert ddbi(X, labels, ridge=0) == pytest.approx(expected)


def test_matches_loop_implementation():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(m, s, (40, 3)) for m, s in [(0, 1), (4, 0.5), (-3, 2), (8, 1.5)]])
    X[:, 1] *= 3
    labels = np.repeat(np.arange(4), 40)
    assert ddbi(X, labels, ridge=0) == pytest.approx(loop_ddbi(X, labels), rel=1e-10)
    assert ddbi(X, labels) == pytest.approx(loop_ddbi(X, labels), rel=1e-4)  # default ridge is tiny


def test_separated_lower_than_overlapping():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(300, 4))
    labels = np.repeat(np.arange(3), 100)
    centres = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], float)
    far = noise + 10 * centres[labels]
    near = noise + 0.5 * centres[labels]
    assert ddbi(far, labels) < ddbi(near, labels)
    assert ddbi(far, labels) < 0.1


def test_permutation_invariance():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3)) + np.repeat(np.eye(3)[[0, 1, 2, 0]] * 3, 50, axis=0)
    labels = np.repeat([0, 1, 2, 3], 50)
    perm = np.array([2, 0, 3, 1])
    assert ddbi(X, perm[labels]) == pytest.approx(ddbi(X, labels))
    shuffle = rng.permutation(200)
    assert ddbi(X[shuffle], labels[shuffle]) == pytest.approx(ddbi(X, labels))


def test_singular_and_tiny_clusters_are_finite():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 5))
    labels = np.zeros(60, dtype=int)
    labels[:3] = 1       # 3 members in 5-D: singular covariance -> ridge
    labels[3] = 2        # one member: uses the global covariance
    X[:3] += 20
    X[3] -= 20
    value = ddbi(X, labels)
    assert np.isfinite(value) and value > 0


def test_single_cluster_is_inf():
    assert ddbi(np.random.default_rng(0).normal(size=(10, 2)), np.zeros(10, int)) == np.inf
