"""Alignment classification of the default method (alignment.py): rotation grid, missing
wedge, wedge-compensated averages, the half-set merge test, and a tiny classification."""
import numpy as np

from disca_engine.clustering import alignment, presets
from disca_engine.clustering.augment import rotate_volumes


def _Stack(data):
    """Subtomograms held in memory, as the engine's particle set (no STAR file)."""
    from disca_engine.clustering.dataset import ParticleSet
    return ParticleSet(None, None, np.asarray(data, np.float32))


def _simulated(names, n, snr, tilt, seed=0):
    from disca_engine.simulate import generate_subtomograms
    g = generate_subtomograms(names, n, snr=snr, tilt=tilt, seed=seed)
    data = g["data"].astype(np.float32)
    data = (data - data.mean(axis=(1, 2, 3), keepdims=True)) / data.std(axis=(1, 2, 3), keepdims=True)
    return data, np.asarray(g["labels"])


def _wedge_40(s=24):
    """Fourier voxels (unshifted layout) measured by a +-40 degree tilt series about y."""
    f = np.fft.fftfreq(s)
    kz, _, kx = np.meshgrid(f, f, f, indexing="ij")
    return np.abs(kz) <= np.tan(np.radians(40)) * np.abs(kx) + 1e-9


def _corr(a, b, band):
    fa, fb = np.fft.fftn(a) * band, np.fft.fftn(b) * band
    return float(np.real(np.vdot(fa, fb)) / (np.linalg.norm(fa) * np.linalg.norm(fb)))


def test_rotation_grid_is_rotations_covering_so3():
    g = alignment.rotation_grid(500).astype(np.float64)
    assert np.allclose(g @ g.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(g), 1, atol=1e-5)
    # every one of 200 random rotations has a grid rotation within 30 degrees
    from disca_engine.clustering.augment import random_rotation_matrices
    r = random_rotation_matrices(200, np.random.default_rng(1))
    cos = (np.einsum("aij,bij->ab", r, g) - 1) / 2
    worst = np.degrees(np.arccos(np.clip(cos.max(1), -1, 1))).max()
    assert worst < 30


def test_missing_wedge_is_found_from_the_data():
    data, _ = _simulated(["ribosome"], 12, 1.0, 60)
    stack = alignment.AlignedStack(_Stack(data))
    # +-60 degree tilt: a third of the kx-kz plane's directions are missing
    assert 0.2 < 1 - stack.wedge.mean() < 0.45
    # +-40 and +-30: more than half of every shell is missing (the simulator's own mask)
    from disca_engine.simulate.optics import wedge_mask
    band = alignment._band(24, 11)
    for tilt in (40, 30):
        found = alignment.AlignedStack(_Stack(_simulated(["ribosome"], 12, 1.0, tilt)[0])).wedge
        half = wedge_mask((24,) * 3, tilt) > 0.5
        assert np.mean(alignment._half(found)[alignment._half(band)] != half[alignment._half(band)]) < 0.02
    assert alignment.AlignedStack(_Stack(_simulated(["ribosome"], 6, 1.0, 90)[0])).wedge.mean() > 0.95


def test_wedge_compensated_average_recovers_the_structure():
    """Rotated copies of one volume with a wedge each, aligned back with their true
    rotations: the compensated average matches the volume better than each copy does."""
    clean, _ = _simulated(["ribosome"], 1, 1000.0, 90)
    vol = clean[0]
    grid = alignment.rotation_grid(60)
    turned = rotate_volumes(np.repeat(vol[None], 60, 0), grid, np.random.default_rng(0), noise_std=0)
    # the same missing wedge (+-45) in the frame of every copy
    f = np.fft.fftfreq(24)
    kz, _, kx = np.meshgrid(f, f, f, indexing="ij")
    wedge = np.abs(kz) <= np.tan(np.radians(45)) * np.abs(kx) + 1e-9
    copies = np.fft.ifftn(np.fft.fftn(turned, axes=(1, 2, 3)) * wedge, axes=(1, 2, 3)).real
    stack = alignment.AlignedStack(_Stack(copies.astype(np.float32)), wedge=wedge)
    avg = alignment.averages(stack, np.zeros(60, int), grid, np.zeros((60, 3), int), 1)[0][0]
    band = alignment._band(24, 8)
    one = _corr(rotate_volumes(copies[:1], grid[:1].transpose(0, 2, 1),
                                         np.random.default_rng(0), noise_std=0)[0], vol, band)
    assert _corr(avg, vol, band) > max(0.9, one + 0.1)


def test_merge_pairs_take_each_reference_once_best_first():
    ratio = np.array([[1, .95, .2, .91], [.95, 1, .3, .2], [.2, .3, 1, .93], [.91, .2, .93, 1]])
    pairs = alignment.merge_pairs(ratio, 0.9)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (2, 3)]
    assert alignment.merge_pairs(ratio, 0.99) == []
    assert list(alignment._relabel(np.array([0, 1, 2, 3, 3]), pairs)) == [0, 0, 1, 1, 1]


def test_a_merged_pair_keeps_the_larger_clusters_reference():
    labels = np.array([0, 1, 1, 1, 2, 2, 3])
    merges = alignment._larger_first([(0, 1, 0.9), (2, 3, 0.85)], labels)
    assert merges == [(1, 0, 0.9), (2, 3, 0.85)]
    assert alignment._kept_after_merging(merges, 4) == [1, 2]
    assert alignment._relabel(labels, merges).tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_classification_purifies_noisy_over_split_seeds():
    """Two structures, 20 each, seeded as 4 clusters with a fifth of the labels wrong:
    alignment classification ends purer than its seeds, without merging the structures."""
    from sklearn.metrics import adjusted_rand_score, homogeneity_score
    data, truth = _simulated(["ribosome", "rod"], 20, 2.0, 60)
    rng = np.random.default_rng(0)
    seeds = truth * 2 + np.arange(len(data)) % 2
    flip = rng.random(len(data)) < 0.2
    seeds[flip] = rng.integers(0, 4, flip.sum())
    cfg = presets.resolve("auto", align_rotations=400)
    lines = []
    labels, history = alignment.classify(_Stack(data), seeds, np.zeros((len(data), 2), np.float32),
                                         cfg, log=lines.append)
    assert homogeneity_score(truth, labels) > 0.95
    assert adjusted_rand_score(truth, labels) > adjusted_rand_score(truth, seeds) + 0.2
    assert 2 <= labels.max() + 1 <= 4
    assert any("merge test" in line for line in lines) and history


def test_split_test_separates_a_cluster_of_two_structures_and_keeps_a_pure_one():
    """A cluster holding two structures (12 each) is cut in two and its parts would not
    merge, so it splits; a cluster of one structure (30) cut in two would merge, so it stays."""
    data, truth = _simulated(["ribosome", "rod", "globule"], 12, 2.0, 60)
    data = np.concatenate([data, _simulated(["globule"], 18, 2.0, 60, seed=1)[0]])
    truth = np.concatenate([truth, np.full(18, 2)])
    labels = np.where(truth == 2, 1, 0)                      # cluster 0 mixed, cluster 1 pure
    z = np.eye(3, dtype=np.float32)[truth] + 0.3 * np.random.default_rng(0).standard_normal((len(truth), 3))
    cfg = presets.resolve("auto", align_rotations=400, align_merge_joint=True,
                          align_merge_min_count=3.0, align_pose_top=16)
    stack = alignment.AlignedStack(_Stack(data), workers=1)
    grid = alignment.rotation_grid(400)
    refs = alignment.averages(stack, labels, np.repeat(np.eye(3, dtype=np.float32)[None], len(data), 0),
                              np.zeros((len(data), 3), np.int64), 2)[0]
    lines = []
    out = alignment._split_mixed(stack, grid, (refs, None, None, None, labels), z, cfg, lines.append)
    assert out is not None, lines
    new_refs, new_labels = out
    assert len(new_refs) == 3
    mixed = new_labels[truth < 2]
    assert set(np.unique(mixed)) == {0, 2}
    assert all(np.bincount(mixed[truth[truth < 2] == t]).max() >= 11 for t in (0, 1))
    assert (new_labels[truth == 2] == 1).all()
    assert "split" in lines[0] and "kept" in lines[1]


def test_pair_ratio_is_near_one_for_one_structure_and_low_for_two():
    """Averages of one structure in two orientations with independent noise agree as
    their half-sets predict (ratio near 1); averages of two structures do not."""
    clean, labels = _simulated(["ribosome", "rod"], 1, 1000.0, 90)
    rng = np.random.default_rng(0)
    grid = alignment.rotation_grid(300)
    # turned and off-centre by 3 voxels: averages of two clusters are rarely centred alike
    turned = np.roll(rotate_volumes(clean[:1], grid[7:8], rng, noise_std=0)[0], (3, -2, 1), (0, 1, 2))

    def noisy(v, sigma):
        return (v + sigma * rng.standard_normal(v.shape)).astype(np.float32)
    halves = [(noisy(v, 1.0), noisy(v, 1.0)) for v in (clean[0], turned, clean[1])]
    h1 = np.stack([a for a, _ in halves])
    h2 = np.stack([b for _, b in halves])
    refs = (h1 + h2) / 2
    stack = alignment.AlignedStack(_Stack(refs), wedge=np.ones((24,) * 3, bool))
    ratio = alignment.pair_ratios(stack, refs, h1, h2, grid)
    assert ratio[0, 1] > 0.8
    assert ratio[0, 2] < 0.6 and ratio[1, 2] < 0.6


def _scan(stack, refs, grid):
    rc = alignment._rotated_coarse(refs, grid, stack, wedge=False)[0]
    band = alignment._band_coefficients(rc, stack.c, stack.band_idx, stack.band_scale)
    return alignment._coarse_scores(stack.coarse_band, alignment._real_pair(band), stack.phases)[0]


def test_rotation_scan_searches_shifts_of_off_centre_particles():
    """A clean particle turned by a grid rotation and shifted by 2 voxels: the coarse scan
    with a shift search ranks that rotation first, and scores it higher than without."""
    clean, _ = _simulated(["ribosome"], 1, 1000.0, 90)
    grid = alignment.rotation_grid(300)
    part = np.roll(rotate_volumes(clean[:1], grid[40:41], np.random.default_rng(0), noise_std=0),
                   (2, -2, 2), (1, 2, 3))
    scores = {}
    for t in (0, 1):
        stack = alignment.AlignedStack(_Stack(part), wedge=np.ones((24,) * 3, bool), coarse_shift=t)
        scores[t] = _scan(stack, clean[:1], grid)
    assert int(np.argmax(scores[1])) == 40
    assert scores[1][40] > scores[0][40] + 0.1


def test_band_coefficient_scores_equal_real_space_dot_products_over_shifts():
    """The scan's Fourier form (band coefficients, phase ramps) gives, for every rotation,
    the best real-space correlation over the rolled coarse copies."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3, 24, 24, 24)).astype(np.float32)
    stack = alignment.AlignedStack(_Stack(data), coarse_shift=1)
    c, measured = stack.c, stack.band_c & stack.wedge_c
    coarse = alignment._apply(alignment.fourier_crop(data, c), measured).reshape(-1, c, c, c)
    refs = rng.standard_normal((5, c ** 3)).astype(np.float32)
    band = alignment._real_pair(alignment._band_coefficients(refs, c, stack.band_idx, stack.band_scale))
    fast = alignment._coarse_scores(stack.coarse_band, band, stack.phases)
    span = (-1, 0, 1)
    slow = np.max([np.roll(coarse, (z, y, x), (1, 2, 3)).reshape(3, -1) @ refs.T
                   for z in span for y in span for x in span], axis=0)
    assert np.allclose(fast, slow, atol=1e-4)


def test_members_of_a_dropped_reference_are_aligned_again_to_the_kept_ones():
    data, truth = _simulated(["ribosome", "rod"], 6, 2.0, 60)
    stack = alignment.AlignedStack(_Stack(data))
    grid = alignment.rotation_grid(300)
    refs = np.stack([data[truth == 0].mean(0), data[truth == 1].mean(0), data[0]])
    labels, rot, shift, score = alignment.align(stack, refs, grid)
    labels[:3] = 2  # as if the third reference had won these and were then dropped
    before = labels.copy()
    out = alignment._reassign(stack, refs[:2], grid, np.array([0, 1]), labels, rot, shift, score)
    orphans = np.flatnonzero(before == 2)
    assert set(out[0].tolist()) <= {0, 1}
    stayed = before != 2
    assert (out[0][stayed] == before[stayed]).all()
    assert (out[0][orphans] == alignment.align(stack.subset(orphans), refs[:2], grid)[0]).all()


def test_large_sets_classify_on_a_subsample_and_assign_the_rest():
    data, truth = _simulated(["ribosome", "rod"], 20, 1.0, 60)
    cfg = presets.resolve("auto", align_rotations=300, align_max_n=24)
    seeds = truth.copy()  # seeds already right: the check is the assignment of the rest
    z = np.zeros((len(data), 2), np.float32)
    lines = []
    labels, _ = alignment.classify(_Stack(data), seeds, z, cfg, log=lines.append)
    assert "random subsample of 24 of the 40" in lines[0]
    from sklearn.metrics import adjusted_rand_score
    assert len(labels) == len(data)
    assert adjusted_rand_score(truth, labels) > 0.9


def test_bad_alignment_settings_are_refused_before_anything_runs():
    import pytest
    from disca_engine.clustering.validate import check_settings
    from disca_engine.errors import EngineError
    for bad in ({"align_rotations": 0}, {"align_coarse": 2}, {"align_rounds": 0}, {"align_merge": 0},
                {"align_merge": 5}, {"align_coarse_shift": -1}, {"align_pose_shift": 4},
                {"align_disattenuate": "false"}, {"align_pose_top": 0},
                {"align_merge_min_count": 0}, {"align_split_passes": -1}, {"align_split_min": 1},
                {"align_polish": "yes"}, {"align_junk_split": 1.5}, {"align_junk_split": True},
                {"align_junk_split": "0.3"}, {"align_junk_split": -0.1},
                {"align_junk_spectrum": 1.0}, {"align_junk_spectrum": "0.8"}):
        with pytest.raises(EngineError, match="setting align_"):
            check_settings(presets.resolve("auto", **bad))
    with pytest.raises(EngineError, match="setting invariant_angular 'false': must be true or false"):
        check_settings(presets.resolve("auto", invariant_angular="false"))
    check_settings(presets.resolve("auto"))  # the defaults pass


def test_merge_test_over_jointly_measured_voxels_joins_one_structure_seen_from_two_sides():
    """Two averages of one structure whose members shared one orientation each (so each
    misses a +-40 wedge, in its own frame): over all voxels they agree less than their
    half-sets predict; over the voxels both measured they agree as one structure, while
    two structures stay apart."""
    clean, _ = _simulated(["ribosome", "rod"], 1, 1000.0, 90)
    rng = np.random.default_rng(0)
    grid = alignment.rotation_grid(300)
    wedge = _wedge_40()

    def measured(v):
        return np.fft.ifftn(np.fft.fftn(v) * wedge).real.astype(np.float32)
    turned = np.roll(rotate_volumes(clean[:1], grid[7:8], rng, noise_std=0)[0], (2, -1, 1), (0, 1, 2))
    halves = [(measured(v + 0.5 * rng.standard_normal(v.shape)),
               measured(v + 0.5 * rng.standard_normal(v.shape)))
              for v in (clean[0], turned, clean[1])]
    h1 = np.stack([a for a, _ in halves])
    h2 = np.stack([b for _, b in halves])
    refs = (h1 + h2) / 2
    counts = np.repeat(20.0 * wedge[None], 3, 0).astype(np.float32)
    stack = alignment.AlignedStack(_Stack(refs), wedge=np.ones((24,) * 3, bool))
    plain = alignment.pair_ratios(stack, refs, h1, h2, grid)
    joint = alignment.pair_ratios(stack, refs, h1, h2, grid, counts=counts)
    assert joint[0, 1] > 0.8 > plain[0, 1]
    assert joint[0, 2] < 0.6 and joint[1, 2] < 0.6


def test_disattenuation_weighs_noisy_averages_up_by_their_reliability():
    """Half-set averages of one structure with little and with much noise: the noisy
    average's weight is higher, both are at least 1, and a subtomogram's disattenuated
    scores against the two averages agree better than the raw ones."""
    clean, _ = _simulated(["ribosome"], 1, 1000.0, 90)
    rng = np.random.default_rng(0)
    v = clean[0]

    def noisy(sigma):
        return (v + sigma * rng.standard_normal(v.shape)).astype(np.float32)
    h1 = np.stack([noisy(0.3), noisy(3.0)])
    h2 = np.stack([noisy(0.3), noisy(3.0)])
    stack = alignment.AlignedStack(_Stack(h1), wedge=np.ones((24,) * 3, bool))
    w = alignment.disattenuation(stack, h1, h2)
    assert 1.0 <= w[0] < w[1]
    part = noisy(2.0)
    band = alignment._band(24, stack.k_max)
    raw = np.array([_corr(part, (a + b) / 2 * stack.mask, band) for a, b in zip(h1, h2)])
    assert abs(raw[0] * w[0] - raw[1] * w[1]) < 0.5 * abs(raw[0] - raw[1])


def test_threads_change_the_time_not_the_classification():
    """Scans, averages and merge tests run in threads; chunks and pairs are combined in a
    fixed order, so 1 and 3 workers give the same labels, scores and merge ratios."""
    data, truth = _simulated(["ribosome", "rod"], 20, 1.0, 60)
    seeds = truth * 2 + np.arange(len(data)) % 2
    z = np.zeros((len(data), 2), np.float32)
    runs = []
    for threads in (1, 3):
        cfg = presets.resolve("auto", align_rotations=300, threads=threads)
        lines = []
        labels, history = alignment.classify(_Stack(data), seeds, z, cfg, log=lines.append)
        assert f"{threads} thread(s)" in lines[0]
        runs.append((labels, [{k: v for k, v in h.items() if k != "seconds"} for h in history]))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and any(h.get("merge_test") for h in runs[0][1])


def test_joint_pose_of_two_wedge_limited_averages_is_the_true_relative_rotation():
    """Two noisy averages of one structure, turned and shifted against each other, each
    measured through a +-40 wedge in its own frame: the pose searched over the Fourier
    voxels both measured (``cover``) turns the second onto the first."""
    clean, _ = _simulated(["ribosome"], 1, 1000.0, 90)
    rng = np.random.default_rng(1)
    grid = alignment.rotation_grid(300)
    wedge = _wedge_40()

    def measured(v):
        v = v + 0.3 * rng.standard_normal(v.shape)
        return np.fft.ifftn(np.fft.fftn(v) * wedge).real.astype(np.float32)
    true = grid[7]
    turned = np.roll(rotate_volumes(clean[:1], true[None], rng, noise_std=0)[0], (2, -1, 1), (0, 1, 2))
    refs = np.stack([measured(clean[0]), measured(turned)])
    counts = (20.0 * wedge).astype(np.float32)
    stack = alignment.AlignedStack(_Stack(refs), wedge=np.ones((24,) * 3, bool))
    rc = alignment._rotated_coarse(refs, grid, stack, wedge=False)
    plain = alignment._apply(alignment.fourier_crop(refs * stack.mask, stack.c), stack.band_c)
    _, mats = alignment._best_pose(stack, refs[0], refs[1], rc[1], plain[0], grid, 2, top=16,
                                   cover=(counts >= 3, counts, 3.0))
    cos = (np.trace(mats[0] @ true) - 1) / 2          # mats should undo ``true``
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 15
