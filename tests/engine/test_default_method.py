"""The default ('auto') method's own pieces: rotation-invariant descriptors, over-split
seeding, the presets' settings, and tiny end-to-end runs of the whole method."""
import contextlib
import io

import numpy as np
import pytest

from disca_engine import settings as S
from disca_engine.clustering.invariants import InvariantDescriptor
from disca_engine.clustering.stages.seeds import seed_k, seed_labels


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
    seeds, ks = S.Seeds(), tuple(range(2, 25))
    assert seed_k(seeds, 200, ks, 5) == 17                    # round(200 / 12)
    assert seed_k(seeds, 60, ks, 5) == 6                      # round(5) raised to k_min 6
    assert seed_k(seeds, 10 ** 6, ks, 5) == 24                # k_max
    assert seed_k(seeds, 12, ks, 5) == 2                      # 12 // 5 members per cluster
    assert seed_k(seeds, 200, tuple(range(2, 9)), 5) == 8     # capped by the K range


def test_seed_labels_keep_structures_apart():
    data, labels = _clean(["ribosome", "globule"], 20, snr=1.0)
    desc = InvariantDescriptor(24).fit_wedge([data])
    z = desc.transform([data])
    z = (z - z.mean(0)) / (z.std(0) + 1e-9)
    seeds = seed_labels(z, 6, 0, 1)
    assert seeds.max() + 1 <= 6 and set(np.unique(seeds)) == set(range(seeds.max() + 1))
    for c in np.unique(seeds):  # every seed cluster holds one structure only
        assert len(np.unique(labels[seeds == c])) == 1


def test_auto_is_the_default_preset_and_paper_is_unchanged():
    method = S.resolve().method
    assert method.preset == "auto" and method.classification is not None
    assert method.classification.merge_test.threshold == 0.8 and method.k_by_bic is None
    paper = S.resolve("paper").method
    assert paper.classification is None and paper.k_by_bic is not None
    assert paper.k_range == tuple(range(2, 21)) and paper.feature_pca.components == 16
    assert paper.network.widths == tuple(64 + 16 * i for i in range(10))
    assert (paper.network.learning_rate, paper.network.batch_size) == (1e-5, 64)
    assert S.pca_components_for(method, 200, 10) == 200 // 20 - 1
    assert S.pca_components_for(method, 200) == 16


def test_every_setting_has_one_default():
    """A field default no preset changes, or no field default and a value in every preset
    that has the stage."""
    from dataclasses import MISSING, fields, is_dataclass

    def stages(obj, path=""):
        for f in fields(obj):
            value = getattr(obj, f.name)
            if is_dataclass(value):
                yield path + f.name, f, value
                yield from stages(value, path + f.name + ".")
    seen = {}
    for method in S.PRESETS.values():
        for f in fields(method):
            seen.setdefault(f.name, (f, []))[1].append(getattr(method, f.name))
        for path, _, stage in stages(method):
            for f in fields(stage):
                seen.setdefault(path + "." + f.name, (f, []))[1].append(getattr(stage, f.name))
    for name, (f, values) in seen.items():
        stage = any(is_dataclass(v) for v in values) or is_dataclass(f.default)
        if f.default is not MISSING and not stage:  # a stage's presence is the preset's choice
            assert all(v == f.default for v in values), f"{name}: a preset overrides its default"


def test_a_fast_report_holds_only_what_fast_uses():
    fast = S.as_dict(S.resolve("fast").method)
    assert set(fast) == {"preset", "k_range", "network", "loop", "feature_pca", "k_by_bic",
                         "min_cluster_size"}
    auto = S.as_dict(S.resolve("auto", junk_split=False).method)
    assert "k_by_bic" not in auto and "junk_split" not in auto["classification"]
    assert auto["classification"]["alignment"]["rotations"] == 1500


def _tiny_run(tmp_path, classes, **settings):
    """(report, printed log) of a tiny default-preset run on 2 x 15 simulated subtomograms."""
    pytest.importorskip("tensorflow")
    from disca_engine.clustering.run import run_cluster
    from disca_engine.simulate import simulate_subtomograms
    with contextlib.redirect_stdout(io.StringIO()):
        star = simulate_subtomograms(str(tmp_path / "sim"), classes=classes, n_per_class=15,
                                     snr=1.0, size=21, voxel_A=20.0, seed=1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = run_cluster(star, str(tmp_path / "run"), threads=2, precision="float32",
                             network={"widths": [8, 8, 8], "feature_dim": 16, "batch_size": 16,
                                      "head_epochs": 3},
                             seeds={"k_min": 4}, **settings)
    return report, out.getvalue()


def test_tiny_auto_run_aligns_the_seeds_then_keeps_the_labels(tmp_path):
    """The default: seeds -> alignment classification -> the network learns those labels;
    the report holds the settings of the stages that ran."""
    report, log = _tiny_run(tmp_path, "ribosome,rod", alignment={"rotations": 300})
    recs = report["iterations"]
    assert recs[0]["mixture"] == "aligned" and recs[0]["classification"]
    assert "rotation-invariant descriptors of 30 subtomograms" in log
    assert "alignment round 1" in log and "merge test" in log and "relabel" in log
    assert "junk split" in log
    assert all(r["mixture"] == "kept" for r in recs[1:]) and len(recs) == 2
    assert recs[1]["classification"] is None
    assert 2 <= recs[-1]["k"] <= 4
    assert recs[-1]["ground_truth"]["homogeneity"] > 0.9  # the simulator's classes
    settings = report["settings"]
    assert settings["classification"]["alignment"]["rotations"] == 300
    assert settings["classification"]["seeds"]["k_min"] == 4 and "k_by_bic" not in settings
    assert report["resolved"]["k_range"] == list(range(2, 7))   # 30 boxes, 5 per cluster
    # the descriptors are kept for the report's interactive embedding, which offers both spaces
    from disca_engine.report import explorer, plots
    from disca_engine.report.run import ClusterRun
    desc = np.load(tmp_path / "run" / "iterations" / "descriptors.npy")
    assert desc.shape[0] == 30 and 2 <= desc.shape[1] <= 16 and np.isfinite(desc).all()
    run = ClusterRun(str(tmp_path / "run"))
    data = explorer.explorer_data(run, str(tmp_path / "report"), plots.cluster_colors(run.k))
    assert [s["key"] for s in data["spaces"]] == ["features", "descriptors"]
    assert len(data["thumbs"]) == 30 and len(data["spaces"][1]["xy"]) == 60


def test_above_the_subsample_the_network_learns_its_classes_and_the_rest_is_classified(tmp_path):
    """30 boxes, a subsample of 20: the classes are found and learnt on those 20, the other
    10 are classified after (here all by alignment, the network's answer kept beside), and
    every output covers all 30."""
    report, log = _tiny_run(tmp_path, "ribosome,rod", alignment={"rotations": 300, "max_n": 20},
                            rest={"by": "alignment"})
    assert "alignment: 20 subtomograms" in log
    assert "the rest: 10 subtomograms outside the subsample of 20" in log
    assert "[rest: alignment] 10/10" in log and "[rest: network] 10/10" in log
    rec = report["rest"]
    assert (rec["subsample"], rec["rest"], rec["by"]) == (20, 10, "alignment")
    assert (rec["by_network"], rec["by_alignment"]) == (0, 10) and 0 <= rec["agreement"] <= 1
    assert rec["ground_truth"]["final"]["homogeneity"] > 0.8
    assert len(rec["ground_truth"]["thresholds"]) == 5
    assert sum(report["cluster_sizes"]) == 30 and report["n_particles"] == 30
    assert report["ground_truth"]["homogeneity"] > 0.8          # of all 30
    assert np.load(tmp_path / "run" / "features.npy").shape[0] == 30
    from disca_engine.io.star import read_particles
    assert len(read_particles(str(tmp_path / "run" / "clusters.star"))) == 30


def test_auto_network_sees_the_mask_crop_and_predict_shows_new_data_the_same_way(tmp_path):
    """auto trains the network on the particle mask's crop (a 32^3 box, a ~13^3 particle),
    records how, and predict crops and masks new boxes alike: the saved model's features of
    the training boxes seen that way are the run's own features."""
    pytest.importorskip("tensorflow")
    from disca_engine.clustering.dataset import load_particles
    from disca_engine.clustering.predict import load_trained, model_input
    from disca_engine.clustering.run import run_cluster
    from disca_engine.simulate import simulate_subtomograms
    with contextlib.redirect_stdout(io.StringIO()):
        star = simulate_subtomograms(str(tmp_path / "sim"), classes="rod,ring", n_per_class=12,
                                     snr=1.0, size=32, voxel_A=20.0, seed=2)
        report = run_cluster(star, str(tmp_path / "run"), threads=2, precision="float32",
                             network={"widths": [8, 8, 8], "feature_dim": 16, "batch_size": 16,
                                      "head_epochs": 3},
                             seeds={"k_min": 4}, alignment={"rotations": 300})
    seen = report["resolved"]["network_input"]
    assert report["box_size"] == 32 and seen["crop"] < 32
    features_model, _, _, saved = load_trained(str(tmp_path / "run"))
    assert int(features_model.input.shape[1]) == seen["crop"]
    particles = load_particles(star, progress=False)
    view = model_input(saved, particles, seen["crop"], "run")
    again = np.concatenate([features_model.predict(b[..., None], verbose=0)
                            for b in view.iter_batches(None, 16)])
    np.testing.assert_allclose(again, np.load(tmp_path / "run" / "features.npy"), atol=1e-4)
    # a report that does not say how the model saw its boxes is refused, not guessed
    with pytest.raises(Exception, match="takes .* boxes"):
        model_input({}, particles, seen["crop"], "run")
