"""The default ('auto') method's own pieces: rotation-invariant descriptors, over-split
seeding, the rotation merge test, and a tiny end-to-end run of the loop with them."""
import contextlib
import io

import numpy as np
import pytest

from disca_engine.clustering import presets
from disca_engine.clustering.invariants import InvariantDescriptor
from disca_engine.clustering.merging import confident, merge_groups, pair_confusion, soft_confusion
from disca_engine.clustering.seeding import seed_k, seed_labels


def _Stack(data):
    """Subtomograms held in memory, as the engine's particle set (no STAR file)."""
    from disca_engine.clustering.dataset import ParticleSet
    return ParticleSet(None, None, np.asarray(data, np.float32))


def _clean(names, n, snr=None, seed=0):
    from disca_engine.simulate import generate_subtomograms
    g = generate_subtomograms(names, n, snr=snr or 10.0, tilt=90, seed=seed)
    return g["data"], g["labels"]


def test_descriptor_is_rotation_invariant_and_tells_shapes_apart():
    data, labels = _clean(["rod", "shell"], 2)
    desc = InvariantDescriptor(24).fit_wedge([data])
    assert desc.measured.all()  # tilt 90: no missing wedge, every direction measured
    v = data[0]
    turned = np.rot90(v, 1, axes=(1, 2)).copy()      # exact 90 degree turn about z
    a, b = desc.describe(v), desc.describe(turned)
    other = desc.describe(data[int(np.flatnonzero(labels != labels[0])[0])])
    same = np.linalg.norm(a - b)
    assert same < 0.05 * np.linalg.norm(a)
    assert np.linalg.norm(a - other) > 5 * same


def test_descriptor_without_angular_power_keeps_radial_parts_only():
    """``invariant_angular`` false: the radial power spectrum and the density profile, the
    same values as in the full descriptor, without fitting the wedge."""
    data, _ = _clean(["rod", "shell"], 2)
    full = InvariantDescriptor(24).fit_wedge([data])
    radial = InvariantDescriptor(24, angular=False)
    a, b = full.describe(data[0]), radial.describe(data[0])
    n = len(full.shells)
    assert len(b) == len(a) - n * 3
    assert np.allclose(b, np.concatenate([a[:n], a[n + 3 * n:]]))
    assert radial.transform([data]).shape == (len(data), len(b))
    with pytest.raises(RuntimeError, match="fit_wedge"):
        InvariantDescriptor(24).transform([data])  # the angular power needs the wedge


def test_wedge_directions_are_found_from_the_data():
    """+-60, and +-30 where more than half of every shell is missing."""
    from disca_engine.simulate import generate_subtomograms
    for tilt in (60, 30):
        g = generate_subtomograms(["ribosome"], 8, snr=1.0, tilt=tilt, seed=0)
        desc = InvariantDescriptor(24).fit_wedge([g["data"]])
        z = desc.dirs[:, 0]
        x = desc.dirs[:, 2]
        edge = np.tan(np.deg2rad(tilt)) * np.abs(x)
        outer = desc.measured[-1]
        # directions well inside the missing wedge are unmeasured, those far from it measured
        assert outer[np.abs(z) > edge + 0.2].mean() < 0.2
        assert outer[np.abs(z) < edge - 0.2].mean() > 0.9


def test_seed_k_is_over_split_within_bounds():
    cfg = presets.resolve("auto")
    assert seed_k(cfg, 200) == round(200 / cfg["seed_per_cluster"])
    assert seed_k(cfg, 60) >= cfg["seed_k_min"] or seed_k(cfg, 60) == 60 // cfg["min_subtomograms_per_cluster"]
    assert seed_k(cfg, 10 ** 6) == cfg["seed_k_max"]
    assert 2 <= seed_k(cfg, 12) <= 12 // cfg["min_subtomograms_per_cluster"]


def test_seed_labels_keep_structures_apart():
    data, labels = _clean(["ribosome", "globule"], 20, snr=1.0)
    desc = InvariantDescriptor(24).fit_wedge([data])
    z = desc.transform([data])
    z = (z - z.mean(0)) / (z.std(0) + 1e-9)
    seeds = seed_labels(z, 6, 0)
    assert seeds.max() + 1 <= 6 and set(np.unique(seeds)) == set(range(seeds.max() + 1))
    for c in np.unique(seeds):  # every seed cluster holds one structure only
        assert len(np.unique(labels[seeds == c])) == 1


def test_merge_test_joins_interchangeable_clusters_only():
    labels = np.repeat([0, 1, 2], 10)
    proba = np.zeros((30, 3))
    proba[:10, :2] = [0.6, 0.4]             # 0 and 1: halves of one structure
    proba[10:20, :2] = [0.4, 0.6]
    proba[20:, 2] = 0.95
    proba[20:, 0] = 0.05
    m, counts = soft_confusion(labels, proba)
    assert m[0, 1] == pytest.approx(0.4) and counts.tolist() == [10, 10, 10]
    assert pair_confusion(m)[0, 1] == pytest.approx(0.8 / 1.2)
    assert pair_confusion(m)[0, 2] == pytest.approx(0.05 / 1.55)
    assert confident(labels, proba)
    new, groups, merges = merge_groups(labels, proba, threshold=0.6)
    assert sorted(map(sorted, groups)) == [[0, 1], [2]]
    assert new.max() == 1 and len(merges) == 1 and merges[0][1] == pytest.approx(0.8 / 1.2)
    assert len(np.unique(new[:20])) == 1 and new[0] != new[25]
    # a threshold above every ratio merges nothing
    _, groups, merges = merge_groups(labels, proba, threshold=1.01)
    assert len(groups) == 3 and not merges
    # a head at chance is not trusted
    assert not confident(labels, np.full((30, 3), 1 / 3))
    # clusters the head has not learnt are never merged, even when another one is confident
    unlearnt = np.full((30, 3), 1 / 3)
    unlearnt[20:] = [0.0, 0.0, 1.0]
    _, groups, merges = merge_groups(labels, unlearnt, threshold=0.6)
    assert len(groups) == 3 and not merges


def test_auto_is_the_default_preset_and_paper_is_unchanged():
    cfg = presets.resolve()
    assert cfg["preset"] == "auto" and cfg["seed_labels"] and cfg["align_classes"] and cfg["align_merge"]
    paper = presets.resolve("paper")
    assert not paper["seed_labels"] and not paper["merge_threshold"] and not paper["k_by_merging"]
    assert not paper["align_classes"]
    assert paper["k_range"] == list(range(2, 21)) and paper["pca_components"] == 16
    assert presets.pca_components_for(cfg, 200, 10) == 200 // 20 - 1
    assert presets.pca_components_for(cfg, 200) == 16


def _tiny_run(tmp_path, classes, **settings):
    """(report, printed log) of a tiny default-preset run on 2 x 15 simulated subtomograms."""
    pytest.importorskip("tensorflow")
    from disca_engine.clustering import loop
    from disca_engine.simulate import simulate_subtomograms
    with contextlib.redirect_stdout(io.StringIO()):
        star = simulate_subtomograms(str(tmp_path / "sim"), classes=classes, n_per_class=15,
                                     snr=1.0, size=21, voxel_A=20.0, seed=1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = loop.run_cluster(star, str(tmp_path / "run"), widths=[8, 8, 8], feature_dim=16,
                                  batch_size=16, head_epochs=3, threads=2, precision="float32",
                                  seed_k_min=4, **settings)
    return report, out.getvalue()


def test_tiny_auto_run_aligns_the_seeds_then_keeps_the_labels(tmp_path):
    """The default: seeds -> alignment classification -> the network learns those labels."""
    report, log = _tiny_run(tmp_path, "ribosome,rod", align_rotations=300)
    recs = report["iterations"]
    assert recs[0]["mixture"] == "aligned" and recs[0]["alignment"]
    assert "alignment round 1" in log and "merge test" in log
    assert all(r["mixture"] == "kept" for r in recs[1:]) and len(recs) == 2
    assert 2 <= recs[-1]["k"] <= 4
    assert recs[-1]["ground_truth"]["homogeneity"] > 0.9  # the simulator's classes


def test_tiny_network_merge_run_seeds_then_merges(tmp_path):
    """The network's rotation merge test (align_classes off) still runs as before."""
    report, log = _tiny_run(tmp_path, "ribosome,globule", max_iterations=3, merge_after=1,
                            align_classes=False, k_by_merging=True, merge_threshold=0.6,
                            seed_warmup=2)
    recs = report["iterations"]
    assert report["config"]["preset"] == "auto"
    assert recs[0]["mixture"] == "seeded" and 2 <= recs[0]["k"] <= 4  # seed K 4, tiny ones absorbed
    assert "rotation-invariant descriptors of 30 subtomograms" in log
    # after seeding, K only comes from merges: never above the seeded K
    assert all(r["k"] <= recs[0]["k"] for r in recs)
    assert sum(recs[-1]["cluster_sizes"]) == 30
