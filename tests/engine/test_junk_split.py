"""The junk split after the relabelling (stages/junk_split.py)."""
import numpy as np

from disca_engine.clustering.align.rotations import rotation_grid
from disca_engine.clustering.stages import junk_split

from test_alignment import AlignedStack, _classify, _simulated, _Stack


def test_two_groups_finds_the_lower_group():
    rng = np.random.default_rng(0)
    scores = np.concatenate([0.40 + 0.05 * rng.standard_normal(30),
                             0.10 + 0.03 * rng.standard_normal(15)])
    low = junk_split.two_groups(scores, min_size=5)
    assert low is not None and low.tolist() == [False] * 30 + [True] * 15


def test_one_group_of_scores_is_not_split():
    for seed in range(5):
        scores = 0.4 + 0.05 * np.random.default_rng(seed).standard_normal(45)
        assert junk_split.two_groups(scores, min_size=5) is None


def test_a_group_smaller_than_min_size_is_not_split_off():
    rng = np.random.default_rng(1)
    scores = np.concatenate([0.40 + 0.02 * rng.standard_normal(30), [0.05, 0.06, 0.04]])
    assert junk_split.two_groups(scores, min_size=5) is None
    assert junk_split.two_groups(scores, min_size=3) is not None


def test_only_the_class_with_two_groups_is_split():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], [40, 30])
    scores = np.concatenate([0.4 + 0.04 * rng.standard_normal(28), 0.1 + 0.03 * rng.standard_normal(12),
                             0.5 + 0.05 * rng.standard_normal(30)]).astype(np.float32)
    new, splits = junk_split.split_low_groups(scores, labels, 5, 0, 0.2, 0.0)
    assert new[:28].tolist() == [0] * 28 and new[28:40].tolist() == [2] * 12
    assert new[40:].tolist() == [1] * 30
    assert [(c, n_hi, n_lo) for c, n_hi, n_lo, *_ in splits] == [(0, 28, 12)]


def _with_noise_boxes(n_noise, seed=0):
    """Ribosomes (class 0) and rods (class 1), 15 each, and ``n_noise`` boxes of normalised
    noise labelled as ribosomes, as junk picks end in a structure's class."""
    data, truth = _simulated(["ribosome", "rod"], 15, 2.0, 60)
    noise = np.random.default_rng(seed).standard_normal((n_noise,) + data.shape[1:])
    data = np.concatenate([data, noise.astype(np.float32)])
    return data, np.concatenate([truth, np.zeros(n_noise, np.int64)]), \
        np.concatenate([truth, np.full(n_noise, 2)])


def test_noise_boxes_in_a_structures_class_are_split_off_and_a_pure_class_kept():
    data, labels, truth = _with_noise_boxes(12)
    stack = AlignedStack(_Stack(data), workers=1)
    grid = rotation_grid(400)
    z = np.zeros((len(data), 2), np.float32)
    scores, refs = junk_split.own_scores(stack, labels, z, grid)
    assert refs.shape == (2,) + data.shape[1:]
    null = junk_split.null_scores(stack, labels, refs, grid, 0)
    assert null[truth == 2].mean() > scores[truth == 2].mean() - 0.1   # noise matches as noise
    assert null[truth == 0].mean() < scores[truth == 0].mean() - 0.2
    new, splits = junk_split.split_low_groups(scores, labels, 5, 0, 0.2, 0.0, null=null)
    assert [c for c, *_ in splits] == [0] and splits[0][5] < 0.2
    assert set(new[truth == 2]) == {2}            # the noise boxes form the new class
    assert set(new[truth == 0]) == {0} and set(new[truth == 1]) == {1}


def test_classification_logs_the_junk_split_and_skips_it_when_off():
    data, labels, truth = _with_noise_boxes(12)
    rng = np.random.default_rng(0)
    z = np.eye(2, dtype=np.float32)[labels] + 0.3 * rng.standard_normal((len(data), 2)).astype(np.float32)
    lines = []
    new, history = _classify(data, labels, z, lines.append, alignment={"rotations": 400},
                             relabel=False)
    assert any("junk split" in line for line in lines)
    step = [h for h in history if h.get("junk_split")]
    assert len(step) == 1 and step[0]["k"] == new.max() + 1
    lines = []
    _, history = _classify(data, labels, z, lines.append, alignment={"rotations": 400},
                           relabel=False, junk_split=False)
    assert not any("junk split" in line for line in lines)
    assert not any(h.get("junk_split") for h in history)


def test_with_null_scores_a_lower_group_far_above_noise_is_kept():
    """Two groups of scores, the lower one well above what structureless boxes reach (a
    structure's own tail): split without the null, kept with it."""
    rng = np.random.default_rng(4)
    labels = np.zeros(45, np.int64)
    scores = np.concatenate([0.6 + 0.03 * rng.standard_normal(30),
                             0.45 + 0.03 * rng.standard_normal(15)]).astype(np.float32)
    null = (0.15 + 0.02 * rng.standard_normal(45)).astype(np.float32)
    assert junk_split.split_low_groups(scores, labels, 5, 0, 0.2, 0.0)[0].max() == 1
    new, splits = junk_split.split_low_groups(scores, labels, 5, 0, 0.2, 0.0, null=null)
    assert new.max() == 0 and splits == []


def _groups_at(position, null_ratio, seed=6):
    """One class of 30 + 15 scores whose lower group lies at ``position`` between its null
    score and the upper group, its null scores ``null_ratio`` x the upper group's."""
    rng = np.random.default_rng(seed)
    null = np.concatenate([np.full(30, 0.2), np.full(15, 0.2 * null_ratio)])
    floor, top = 0.2 * null_ratio, 0.6
    lower = floor + position * (top - floor)
    scores = np.concatenate([top + 0.02 * rng.standard_normal(30),
                             lower + 0.02 * rng.standard_normal(15)])
    return scores.astype(np.float32), np.zeros(45, np.int64), null.astype(np.float32)


def test_a_lower_group_of_other_content_is_split_off_by_its_null_ratio():
    """At position 0.3 (above 0.2) the lower group is kept unless its boxes fit the average's
    power spectrum clearly less than the upper group's (null ratio 0.6 < 0.8)."""
    scores, labels, null = _groups_at(0.3, 0.6)
    assert junk_split.split_low_groups(scores, labels, 5, 0, 0.2, 0.0, null=null)[0].max() == 0
    new, splits = junk_split.split_low_groups(scores, labels, 5, 0, 0.2, 0.8, null=null)
    assert new.tolist() == [0] * 30 + [1] * 15
    assert abs(splits[0][5] - 0.3) < 0.05 and abs(splits[0][6] - 0.6) < 0.02


def test_a_structures_own_lower_group_is_kept_whatever_the_spectral_test():
    # the same null as the upper group (a structure's own tail at low SNR): kept
    scores, labels, null = _groups_at(0.3, 1.0)
    assert junk_split.split_low_groups(scores, labels, 5, 0, 0.2, 0.8, null=null)[0].max() == 0
    # other content but matching the average more than half as well: the structure, kept
    scores, labels, null = _groups_at(0.6, 0.6)
    assert junk_split.split_low_groups(scores, labels, 5, 0, 0.2, 0.8, null=null)[0].max() == 0


def test_phase_randomised_volume_keeps_the_power_spectrum():
    rng = np.random.default_rng(5)
    vol = rng.standard_normal((12, 12, 12)).cumsum(0).astype(np.float32)
    fake = junk_split.phase_randomised(vol, rng)
    assert np.allclose(np.abs(np.fft.rfftn(fake)), np.abs(np.fft.rfftn(vol)), rtol=1e-3, atol=1e-3)
    assert abs(np.corrcoef(fake.ravel(), vol.ravel())[0, 1]) < 0.3
