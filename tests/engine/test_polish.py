"""Relabel: the two-view relabelling after the alignment classification (stages/relabel.py)."""
import numpy as np

from disca_engine.clustering.align.averages import references_from_labels
from disca_engine.clustering.align.rotations import rotation_grid
from disca_engine.clustering.align.scan import score_matrix
from disca_engine.clustering.stages import relabel as polish

from test_alignment import AlignedStack, _classify, _simulated, _Stack


def test_canonical_labels_do_not_depend_on_cluster_ids():
    a = np.array([2, 2, 0, 1, 0, 2])
    b = np.array([5, 5, 3, 9, 3, 5])
    assert polish.canonical(a).tolist() == [0, 0, 1, 2, 1, 0]
    assert np.array_equal(polish.canonical(a), polish.canonical(b))


def test_two_views_correct_labels_that_both_views_contradict():
    """Three classes, 30 each, separated in both views (a descriptor and a score block);
    a tenth of the labels wrong: the relabelling puts them back."""
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 30)
    z = 3.0 * np.eye(3)[truth] + rng.standard_normal((90, 3))
    scores = 0.3 + 0.2 * np.eye(3)[truth] + 0.05 * rng.standard_normal((90, 3))
    labels = truth.copy()
    wrong = rng.choice(90, 9, replace=False)
    labels[wrong] = (truth[wrong] + 1) % 3
    new, passes = polish.two_view_labels(z, scores, labels, 0, 5)
    assert np.mean(new == truth) > 0.97 > np.mean(labels == truth)
    assert 1 <= passes <= 10


def test_a_view_without_information_does_not_move_correct_labels():
    """Correct labels, a score block that separates the classes and a descriptor block of
    pure noise: the labels stay (the discriminant gives the noise no weight)."""
    rng = np.random.default_rng(1)
    truth = np.repeat(np.arange(4), 25)
    z = rng.standard_normal((100, 8))
    scores = 0.3 + 0.2 * np.eye(4)[truth] + 0.05 * rng.standard_normal((100, 4))
    new, _ = polish.two_view_labels(z, scores, truth, 0, 5)
    assert np.mean(new == truth) >= 0.97


def test_classes_left_too_small_are_dissolved():
    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(2), 30)
    z = 3.0 * np.eye(2)[truth] + rng.standard_normal((60, 2))
    scores = 0.3 + 0.2 * np.eye(2)[truth] + 0.05 * rng.standard_normal((60, 2))
    labels = truth.copy()
    labels[:6] = 2                       # a third "class" of six members of class 0
    new, _ = polish.two_view_labels(z, scores, labels, 0, min_size=7)
    assert new.max() == 1 and np.mean(new == truth) > 0.95


def test_score_matrix_ranks_each_subtomograms_own_structure_first():
    data, truth = _simulated(["ribosome", "rod"], 10, 2.0, 60)
    stack = AlignedStack(_Stack(data), workers=1)
    grid = rotation_grid(400)
    refs, weight = references_from_labels(stack, truth, np.zeros((20, 2), np.float32), grid)
    scores = score_matrix(stack, refs, grid, weight)
    assert scores.shape == (20, 2) and np.isfinite(scores).all()
    assert np.mean(scores.argmax(1) == truth) >= 0.95
    # the same scores, whatever the number of threads
    stack2 = AlignedStack(_Stack(data), workers=2)
    assert np.allclose(score_matrix(stack2, refs, grid, weight), scores, atol=1e-5)


def test_classification_logs_the_relabelling_and_skips_it_when_off():
    from sklearn.metrics import homogeneity_score
    data, truth = _simulated(["ribosome", "rod"], 15, 2.0, 60)
    rng = np.random.default_rng(0)
    seeds = truth * 2 + np.arange(len(data)) % 2
    z = np.eye(2, dtype=np.float32)[truth] + 0.5 * rng.standard_normal((30, 2)).astype(np.float32)
    lines = []
    labels, history = _classify(data, seeds, z, lines.append, alignment={"rotations": 400})
    assert homogeneity_score(truth, labels) > 0.95
    assert any("relabel (two views)" in line for line in lines)
    assert any(h.get("relabel") for h in history)
    lines = []
    _, history = _classify(data, seeds, z, lines.append, alignment={"rotations": 400},
                           relabel=False)
    assert not any("relabel" in line for line in lines) and not any(h.get("relabel") for h in history)


def test_moved_fraction_is_right_when_two_clusters_merge_and_ids_change():
    old = np.repeat(np.arange(11), 10)
    new = (old + 3) % 11
    new[new == 10] = 0                   # two clusters of 10 merged, the ids permuted
    new = np.unique(new, return_inverse=True)[1]
    assert abs(polish.moved(old, new) - 10 / 110) < 1e-9
    assert polish.moved(old, old) == 0.0


def test_a_single_class_is_returned_as_it_is():
    rng = np.random.default_rng(3)
    labels = np.zeros(20, np.int64)
    new, passes = polish.two_view_labels(rng.standard_normal((20, 3)), rng.random((20, 1)), labels, 0, 5)
    assert np.array_equal(new, labels) and passes == 0
