import numpy as np
import pytest

from disca_engine.clustering.labels import (StopRule, contingency, fraction_changed, label_smoothing,
                                            match_labels, smooth_targets)


def test_match_labels_recovers_permutation():
    rng = np.random.default_rng(0)
    old = rng.integers(0, 5, 300)
    perm = np.array([3, 0, 4, 1, 2])
    new = perm[old]
    np.testing.assert_array_equal(match_labels(new, old), old)


def test_match_labels_with_noise_and_permutation_output():
    rng = np.random.default_rng(1)
    old = rng.integers(0, 4, 1000)
    new = np.array([2, 3, 1, 0])[old]
    flip = rng.random(1000) < 0.1
    new[flip] = rng.integers(0, 4, flip.sum())
    matched, perm = match_labels(new, old, return_permutation=True)
    np.testing.assert_array_equal(matched, perm[new])
    assert sorted(perm.tolist()) == [0, 1, 2, 3]
    assert np.mean(matched == old) > 0.9


def test_match_labels_maximises_total_overlap_not_greedy():
    # greedy (row-wise argmax) would map new 0 -> old 0 and lose 9 items; optimum maps 0->1, 1->0
    old = np.array([0] * 10 + [1] * 10)
    new = np.array([0] * 6 + [1] * 4 + [0] * 10)
    c = contingency(new, old)
    assert c.tolist() == [[6, 10], [4, 0]]
    matched = match_labels(new, old)
    assert np.sum(matched == old) == 14  # 10 + 4 (vs 6 + 0 greedy)


def test_match_labels_changing_k_is_contiguous():
    old = np.array([0, 0, 1, 1, 2, 2])
    more = np.array([3, 3, 0, 2, 1, 1])
    out = match_labels(more, old)
    assert set(out.tolist()) == {0, 1, 2, 3} and out[0] == 0 and out[4] == 2
    fewer = np.array([1, 1, 1, 1, 0, 0])
    out = match_labels(fewer, old)
    assert set(out.tolist()) == {0, 1} and out[4] == 1  # old label 2 compacted to 1


def test_match_labels_without_old_returns_copy():
    new = np.array([1, 0, 1])
    out = match_labels(new, None)
    np.testing.assert_array_equal(out, new)
    out[0] = 5
    assert new[0] == 1
    np.testing.assert_array_equal(match_labels(new, np.array([0, 1])), new)


def test_label_smoothing_schedule():
    assert label_smoothing(0) == pytest.approx(0.2)
    assert label_smoothing(1) == pytest.approx(0.18)
    assert label_smoothing(5) == pytest.approx(0.2 * 0.9 ** 5)
    assert label_smoothing(2, start=0.1, decay=0.5) == pytest.approx(0.025)
    with pytest.raises(ValueError):
        label_smoothing(-1)


def test_smooth_targets():
    t = smooth_targets(np.array([0, 2]), 4, 0.2)
    assert t.dtype == np.float32 and t.shape == (2, 4)
    np.testing.assert_allclose(t[0], [0.85, 0.05, 0.05, 0.05], rtol=1e-6)
    np.testing.assert_allclose(t[1], [0.05, 0.05, 0.85, 0.05], rtol=1e-6)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(smooth_targets(np.array([1]), 3, 0.0), [[0, 1, 0]])
    with pytest.raises(ValueError):
        smooth_targets(np.array([3]), 3, 0.1)


def test_fraction_changed():
    assert fraction_changed(np.array([0, 1, 2, 3]), np.array([0, 1, 0, 0])) == 0.5
    assert fraction_changed(np.array([0, 1]), None) == 1.0
    assert fraction_changed(np.array([0, 1]), np.array([0, 1, 1])) == 1.0
    assert fraction_changed(np.array([2, 2]), np.array([2, 2])) == 0.0


def test_stop_rule_needs_patience_stable_transitions():
    labels = np.zeros(200, dtype=int)
    labels[100:] = 1
    rule = StopRule(patience=3, min_stable=0.99)
    assert not rule.update(2, labels)          # first iteration: nothing to compare
    assert not rule.update(2, labels)          # 1 stable transition
    assert not rule.update(2, labels)          # 2
    assert rule.update(2, labels)              # 3 consecutive -> stop
    assert rule.stable_count == 3


def test_stop_rule_resets_on_k_change_or_label_change():
    base = np.zeros(200, dtype=int)
    base[100:] = 1
    rule = StopRule(patience=2, min_stable=0.99)
    rule.update(2, base)
    assert not rule.update(2, base)
    assert not rule.update(3, base)            # K changed: reset
    assert rule.stable_count == 0
    assert not rule.update(3, base)
    moved = base.copy()
    moved[:3] = 1                              # 1.5% changed > 1%: not stable
    assert not rule.update(3, moved)
    assert rule.stable_count == 0
    one = moved.copy()
    one[:2] = 0                                # 1% changed: exactly 99% unchanged is stable
    assert not rule.update(3, one)
    assert rule.update(3, one)


def test_stop_rule_state_roundtrip():
    rule = StopRule(patience=3)
    labels = np.array([0, 1, 1, 0])
    rule.update(2, labels)
    rule.update(2, labels)
    again = StopRule.from_state(rule.state())
    assert again.stable_count == 1
    assert not again.update(2, labels)
    assert again.update(2, labels)
