"""Alignment classification of the default method: its kernels (``clustering.align``:
rotation grid, missing wedge, wedge-compensated averages, the scan, the half-set agreement
of two averages) and its stages (``clustering.stages``: alignment, merge test) in tiny
classifications."""
import numpy as np
import pytest

from disca_engine import settings as S
from disca_engine.clustering.align import averages as A
from disca_engine.clustering.align import fourier, pairs, rotations, rounds, scan
from disca_engine.clustering.align.stack import AlignedStack as _AlignedStack
from disca_engine.clustering.align.stack import band_coefficients, real_pair
from disca_engine.clustering.augment import rotate_volumes
from disca_engine.clustering.pipeline import classes_from_seeds
from disca_engine.errors import EngineError


def AlignedStack(particles, coarse=12, coarse_shift=1, **kw):
    """The stack with the default method's coarse box and shift search."""
    return _AlignedStack(particles, coarse, coarse_shift, **kw)


def _classify(data, seeds, z, log, **overrides):
    """(labels, history) of the stages after the seeds, with auto's settings + overrides."""
    method = S.resolve("auto", **overrides).method
    threads = overrides.get("threads")
    classes = classes_from_seeds(_Stack(data), seeds, z, method, 0, threads, log=log)
    return classes.labels, classes.history


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


def _corr(a, b, band):
    fa, fb = np.fft.fftn(a) * band, np.fft.fftn(b) * band
    return float(np.real(np.vdot(fa, fb)) / (np.linalg.norm(fa) * np.linalg.norm(fb)))


def test_rotation_grid_is_rotations_covering_so3():
    g = rotations.rotation_grid(500).astype(np.float64)
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
    stack = AlignedStack(_Stack(data))
    # +-60 degree tilt: a third of the kx-kz plane's directions are missing
    assert 0.2 < 1 - stack.wedge.mean() < 0.45
    # +-40 and +-30: more than half of every shell is missing (the simulator's own mask)
    from disca_engine.simulate.optics import wedge_mask
    band = fourier.band(24, 11)
    for tilt in (40, 30):
        found = AlignedStack(_Stack(_simulated(["ribosome"], 12, 1.0, tilt)[0])).wedge
        half = wedge_mask((24,) * 3, tilt) > 0.5
        assert np.mean(fourier.half(found)[fourier.half(band)] != half[fourier.half(band)]) < 0.02
    assert AlignedStack(_Stack(_simulated(["ribosome"], 6, 1.0, 90)[0])).wedge.mean() > 0.95


def test_wedge_compensated_average_recovers_the_structure():
    """Rotated copies of one volume with a wedge each, aligned back with their true
    rotations: the compensated average matches the volume better than each copy does."""
    clean, _ = _simulated(["ribosome"], 1, 1000.0, 90)
    vol = clean[0]
    grid = rotations.rotation_grid(60)
    turned = rotate_volumes(np.repeat(vol[None], 60, 0), grid, np.random.default_rng(0), noise_std=0)
    # the same missing wedge (+-45) in the frame of every copy
    f = np.fft.fftfreq(24)
    kz, _, kx = np.meshgrid(f, f, f, indexing="ij")
    wedge = np.abs(kz) <= np.tan(np.radians(45)) * np.abs(kx) + 1e-9
    copies = np.fft.ifftn(np.fft.fftn(turned, axes=(1, 2, 3)) * wedge, axes=(1, 2, 3)).real
    stack = AlignedStack(_Stack(copies.astype(np.float32)), wedge=wedge)
    avg = A.averages(stack, np.zeros(60, int), grid, np.zeros((60, 3), int), 1)[0][0]
    band = fourier.band(24, 8)
    one = _corr(rotate_volumes(copies[:1], grid[:1].transpose(0, 2, 1),
                                         np.random.default_rng(0), noise_std=0)[0], vol, band)
    assert _corr(avg, vol, band) > max(0.9, one + 0.1)


def test_merge_pairs_take_each_reference_once_best_first():
    ratio = np.array([[1, .95, .2, .91], [.95, 1, .3, .2], [.2, .3, 1, .93], [.91, .2, .93, 1]])
    merges = pairs.merge_pairs(ratio, 0.9)
    assert [(i, j) for i, j, _ in merges] == [(0, 1), (2, 3)]
    assert pairs.merge_pairs(ratio, 0.99) == []
    assert list(pairs.merged_labels(np.array([0, 1, 2, 3, 3]), merges)) == [0, 0, 1, 1, 1]
    assert pairs.kept_after_merging(merges, 4) == [0, 2]


def test_classification_purifies_noisy_over_split_seeds():
    """Two structures, 20 each, seeded as 4 clusters with a fifth of the labels wrong:
    alignment classification ends purer than its seeds, without merging the structures."""
    from sklearn.metrics import adjusted_rand_score, homogeneity_score
    data, truth = _simulated(["ribosome", "rod"], 20, 2.0, 60)
    rng = np.random.default_rng(0)
    seeds = truth * 2 + np.arange(len(data)) % 2
    flip = rng.random(len(data)) < 0.2
    seeds[flip] = rng.integers(0, 4, flip.sum())
    lines = []
    labels, history = _classify(data, seeds, np.zeros((len(data), 2), np.float32), lines.append,
                                alignment={"rotations": 400})
    assert homogeneity_score(truth, labels) > 0.95
    assert adjusted_rand_score(truth, labels) > adjusted_rand_score(truth, seeds) + 0.2
    assert 2 <= labels.max() + 1 <= 4
    assert any("merge test" in line for line in lines) and history


def test_pair_ratio_is_near_one_for_one_structure_and_low_for_two():
    """Averages of one structure in two orientations with independent noise agree as
    their half-sets predict (ratio near 1); averages of two structures do not."""
    clean, labels = _simulated(["ribosome", "rod"], 1, 1000.0, 90)
    rng = np.random.default_rng(0)
    grid = rotations.rotation_grid(300)
    # turned and off-centre by 3 voxels: averages of two clusters are rarely centred alike
    turned = np.roll(rotate_volumes(clean[:1], grid[7:8], rng, noise_std=0)[0], (3, -2, 1), (0, 1, 2))

    def noisy(v, sigma):
        return (v + sigma * rng.standard_normal(v.shape)).astype(np.float32)
    halves = [(noisy(v, 1.0), noisy(v, 1.0)) for v in (clean[0], turned, clean[1])]
    h1 = np.stack([a for a, _ in halves])
    h2 = np.stack([b for _, b in halves])
    refs = (h1 + h2) / 2
    stack = AlignedStack(_Stack(refs), wedge=np.ones((24,) * 3, bool))
    ratio = pairs.pair_ratios(stack, refs, h1, h2, grid, 2, 4)
    assert ratio[0, 1] > 0.8
    assert ratio[0, 2] < 0.6 and ratio[1, 2] < 0.6


def _scan(stack, refs, grid):
    rc = scan.rotated_coarse(refs, grid, stack, wedge=False)[0]
    band = band_coefficients(rc, stack.c, stack.band_idx, stack.band_scale)
    return scan.coarse_scores(stack.coarse_band, real_pair(band), stack.phases)[0]


def test_rotation_scan_searches_shifts_of_off_centre_particles():
    """A clean particle turned by a grid rotation and shifted by 2 voxels: the coarse scan
    with a shift search ranks that rotation first, and scores it higher than without."""
    clean, _ = _simulated(["ribosome"], 1, 1000.0, 90)
    grid = rotations.rotation_grid(300)
    part = np.roll(rotate_volumes(clean[:1], grid[40:41], np.random.default_rng(0), noise_std=0),
                   (2, -2, 2), (1, 2, 3))
    scores = {}
    for t in (0, 1):
        stack = AlignedStack(_Stack(part), wedge=np.ones((24,) * 3, bool), coarse_shift=t)
        scores[t] = _scan(stack, clean[:1], grid)
    assert int(np.argmax(scores[1])) == 40
    assert scores[1][40] > scores[0][40] + 0.1


def test_band_coefficient_scores_equal_real_space_dot_products_over_shifts():
    """The scan's Fourier form (band coefficients, phase ramps) gives, for every rotation,
    the best real-space correlation over the rolled coarse copies."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3, 24, 24, 24)).astype(np.float32)
    stack = AlignedStack(_Stack(data), coarse_shift=1)
    c, measured = stack.c, stack.band_c & stack.wedge_c
    coarse = fourier.unit_filtered(fourier.fourier_crop(data, c), measured).reshape(-1, c, c, c)
    refs = rng.standard_normal((5, c ** 3)).astype(np.float32)
    band = real_pair(band_coefficients(refs, c, stack.band_idx, stack.band_scale))
    fast = scan.coarse_scores(stack.coarse_band, band, stack.phases)
    span = (-1, 0, 1)
    slow = np.max([np.roll(coarse, (z, y, x), (1, 2, 3)).reshape(3, -1) @ refs.T
                   for z in span for y in span for x in span], axis=0)
    assert np.allclose(fast, slow, atol=1e-4)


def test_members_of_a_dropped_reference_are_aligned_again_to_the_kept_ones():
    data, truth = _simulated(["ribosome", "rod"], 6, 2.0, 60)
    stack = AlignedStack(_Stack(data))
    grid = rotations.rotation_grid(300)
    refs = np.stack([data[truth == 0].mean(0), data[truth == 1].mean(0), data[0]])
    labels, rot, shift, score = scan.align(stack, refs, grid)
    labels[:3] = 2  # as if the third reference had won these and were then dropped
    before = labels.copy()
    out = rounds.reassign(stack, refs[:2], grid, np.array([0, 1]), labels, rot, shift, score)
    orphans = np.flatnonzero(before == 2)
    assert set(out[0].tolist()) <= {0, 1}
    stayed = before != 2
    assert (out[0][stayed] == before[stayed]).all()
    assert (out[0][orphans] == scan.align(stack.subset(orphans), refs[:2], grid)[0]).all()


@pytest.mark.parametrize("stage,values", [
    ("alignment", {"rotations": 0}), ("alignment", {"coarse": 2}), ("alignment", {"rounds": 0}),
    ("merge_test", {"threshold": 0}), ("merge_test", {"threshold": 5}),
    ("alignment", {"coarse_shift": -1}), ("merge_test", {"pose_shift": 4}),
    ("alignment", {"disattenuate": "false"}), ("merge_test", {"pose_top": 0}),
    ("junk_split", {"position": 1.5}), ("junk_split", {"position": True}),
    ("junk_split", {"position": "0.3"}), ("junk_split", {"position": -0.1}),
    ("junk_split", {"spectrum": 1.0}), ("junk_split", {"spectrum": "0.8"}),
    ("descriptors", {"angular": "false"})])
def test_bad_classification_settings_are_refused_in_one_line(stage, values):
    name = next(iter(values))
    with pytest.raises(EngineError, match=f"setting classification.{stage}.{name} "):
        S.resolve("auto", **{stage: values})


def test_bad_switch_and_unknown_settings_are_refused():
    with pytest.raises(EngineError, match="setting classification.relabel 'yes': must be true or false"):
        S.resolve("auto", relabel="yes")
    with pytest.raises(EngineError, match="unknown setting alignment.merge: alignment has"):
        S.resolve("auto", alignment={"merge": 0.8})
    with pytest.raises(EngineError, match="--no-junk-split: the fast preset has no classification"):
        S.resolve("fast", junk_split=False)
    assert S.resolve("auto").method.classification.junk_split.position == 0.2  # defaults pass


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
    stack = AlignedStack(_Stack(h1), wedge=np.ones((24,) * 3, bool))
    w = A.disattenuation(stack, h1, h2)
    assert 1.0 <= w[0] < w[1]
    part = noisy(2.0)
    band = fourier.band(24, stack.k_max)
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
        lines = []
        labels, history = _classify(data, seeds, z, lines.append, threads=threads,
                                    alignment={"rotations": 300})
        assert f"{threads} thread(s)" in lines[0]
        runs.append((labels, [{k: v for k, v in h.items() if k != "seconds"} for h in history]))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and any(h.get("merge_test") for h in runs[0][1])


