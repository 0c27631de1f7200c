"""The DISCA loop (method sections 4-5): one tiny run checked against every rule, then
reproducibility, resume after a crash, restarts and --init-model."""
import contextlib
import io
import json
import os

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from disca_engine import contract, settings as S  # noqa: E402
from disca_engine.clustering.network import labelling, loop  # noqa: E402
from disca_engine.clustering.network.checkpoint import Checkpoint  # noqa: E402
from disca_engine.clustering.network.training import train_network  # noqa: E402
from disca_engine.clustering.run import run_cluster  # noqa: E402
from disca_engine.errors import EngineError  # noqa: E402
from disca_engine.io.mrc import read_volume  # noqa: E402
from disca_engine.io.star import read_star  # noqa: E402

TINY = dict(network={"widths": [8, 8, 8], "feature_dim": 16, "head_epochs": 3}, k_range="2:4",
            max_iterations=3, epochs_per_iteration=1, batch_size=16, threads=2, precision="float32",
            learning_rate=1e-3)


@pytest.fixture(scope="module")
def star(tmp_path_factory):
    from disca_engine.simulate import simulate_subtomograms
    folder = tmp_path_factory.mktemp("sim")
    with contextlib.redirect_stdout(io.StringIO()):
        return simulate_subtomograms(str(folder), classes=3, n_per_class=12, snr=1.0, size=21, voxel_A=20.0, seed=1)


def _run(star, outdir, **kw):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = run_cluster(star, str(outdir), preset="fast", **{**TINY, **kw})
    return report, out.getvalue()


@pytest.fixture(scope="module")
def run(star, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("run")
    report, text = _run(star, outdir, seed=3)
    return outdir, report, text


def test_report_follows_the_contract(run):
    outdir, report, text = run
    recs = report["iterations"]
    assert 1 <= len(recs) <= 3 and report["n_particles"] == 36 and report["box_size"] == 21
    for i, r in enumerate(recs):
        assert r["iteration"] == i + 1
        assert set(r) >= {"k", "bic", "mixture", "ddbi", "labels_changed", "cluster_sizes", "learning_rate",
                          "label_smoothing", "seconds"}
        assert set(r["bic"]) == {"2", "3", "4"} and r["k"] == len(r["cluster_sizes"])
        # the lowest BIC chose K (empty clusters dropped after it can only lower K)
        assert int(min(r["bic"], key=r["bic"].get)) >= r["k"]
        assert all(np.isfinite(v) for v in r["bic"].values())
        assert sum(r["cluster_sizes"]) == 36 and min(r["cluster_sizes"]) > 0  # empty clusters dropped
        assert r["learning_rate"] == pytest.approx(1e-3 * 0.95 ** i)
        assert r["label_smoothing"] == pytest.approx(0.2 * 0.9 ** i)
        assert set(r["seconds"]) >= {"features", "pca", "mixture", "train"}
        assert r["mixture"] in ("de_novo", "inherited")
        assert "ground_truth" in r
    assert recs[0]["mixture"] == "de_novo" and recs[0]["labels_changed"] == 1.0
    best = min(recs, key=lambda r: r["ddbi"])
    assert report["chosen_iteration"] == best["iteration"] and report["ddbi"] == best["ddbi"]
    assert report["k"] == best["k"] and report["cluster_sizes"] == best["cluster_sizes"]
    assert report["restarts"][0]["seed"] == 3 and report["chosen_restart"] == 0
    assert 0 <= report["ground_truth"]["homogeneity"] <= 1
    # one progress line per iteration, in the documented form
    lines = [line for line in text.splitlines() if line.startswith("iteration ")]
    assert len(lines) == len(recs)
    assert lines[0].startswith("iteration 1/3: K=") and "DDBI=" in lines[0] and "sizes=[" in lines[0]
    assert "time features" in lines[0] and "train" in lines[0]


def test_output_files(run, star):
    outdir, report, _ = run
    k, n = report["k"], 36
    for name in ("clusters.star", "report.json", "features.npy", "features_pca.npy", "model/model.keras",
                 "model/pca.npz", "model/gmm.npz", "plots/bic.png", "plots/iterations.png",
                 "plots/cluster_sizes.png"):
        assert os.path.isfile(os.path.join(outdir, name)), name
    assert not os.path.exists(os.path.join(outdir, "cache"))
    assert np.load(os.path.join(outdir, "features.npy")).shape == (n, 16)
    table = read_star(os.path.join(outdir, "clusters.star"))
    source = read_star(star)
    for key in source.columns:
        if key == "rlnImageName":  # made absolute: clusters.star is in another folder
            expected = [os.path.join(os.path.dirname(os.path.abspath(star)), n) for n in source[key]]
            assert table[key] == expected
        else:
            assert table[key] == source[key]  # every input column, input order
    classes = table.column("rlnClassNumber", int)
    post = table.column("rlnMaxValueProbDistribution", float)
    assert set(classes) == set(range(1, k + 1)) and np.all((post > 0) & (post <= 1))
    assert np.bincount(classes - 1).tolist() == report["cluster_sizes"]
    labels_it = np.load(os.path.join(outdir, "iterations", f"iter_{report['chosen_iteration']:03d}", "labels.npy"))
    np.testing.assert_array_equal(labels_it + 1, classes)
    for i in range(1, len(report["iterations"]) + 1):
        assert os.path.isfile(os.path.join(outdir, "iterations", f"iter_{i:03d}", "features_pca.npy"))
    # class average = mean of the (normalised) members
    from disca_engine.clustering.dataset import load_particles
    ps = load_particles(star, progress=False)
    avg = read_volume(os.path.join(outdir, "averages", "class_001.mrc"))
    np.testing.assert_allclose(avg, ps.volumes[classes == 1].mean(axis=0), atol=1e-4)


def test_finished_run_is_protected(run, star):
    outdir, report, _ = run
    with pytest.raises(EngineError, match="finished clustering run"):
        _run(star, outdir)
    again, _ = _run(star, outdir, seed=3, resume=True)  # nothing left to do
    assert again["chosen_iteration"] == report["chosen_iteration"]
    with pytest.raises(EngineError, match="setting seed is 0, the checkpoint's was 3"):
        _run(star, outdir, resume=True)  # another seed is another run, not "nothing to resume"


def test_resume_after_crash_gives_the_uninterrupted_result(run, star, tmp_path, monkeypatch):
    outdir, report, _ = run
    if len(report["iterations"]) < 3:
        pytest.skip("reference run stopped early")

    save_iteration = loop.save_iteration

    def crash(iter_dir, iteration, *args):
        if iteration == 3:  # after the checkpoint of iteration 2
            raise KeyboardInterrupt("simulated kill")
        save_iteration(iter_dir, iteration, *args)
    monkeypatch.setattr(loop, "save_iteration", crash)
    with pytest.raises(KeyboardInterrupt):
        _run(star, tmp_path / "r", seed=3)
    assert not os.path.exists(tmp_path / "r" / "report.json")
    assert not os.path.exists(tmp_path / "r" / "cache")  # removed on every failure
    with pytest.raises(EngineError, match="--resume"):
        _run(star, tmp_path / "r", seed=3)
    monkeypatch.setattr(loop, "save_iteration", save_iteration)
    resumed, text = _run(star, tmp_path / "r", seed=3, resume=True)
    assert "resuming restart 0 after iteration 2/3" in text
    assert [r["ddbi"] for r in resumed["iterations"]] == [r["ddbi"] for r in report["iterations"]]
    assert read_star(os.path.join(tmp_path / "r", "clusters.star"))["rlnClassNumber"] == \
        read_star(os.path.join(outdir, "clusters.star"))["rlnClassNumber"]
    # same seed, same machine: bit-identical features (so this is also the reproducibility test)
    np.testing.assert_array_equal(np.load(os.path.join(outdir, "features.npy")),
                                  np.load(os.path.join(tmp_path / "r", "features.npy")))


def test_clusters_star_is_written_last(star, tmp_path, monkeypatch):
    """A run killed while writing its outputs must not look finished."""
    from disca_engine.clustering import outputs

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing the plots")
    monkeypatch.setattr(outputs, "write_plots", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(star, tmp_path / "r", seed=3, max_iterations=1)
    assert os.path.isdir(tmp_path / "r" / "model")  # outputs were being written...
    assert not os.path.exists(tmp_path / "r" / "clusters.star")  # ...but the marker comes last


def test_restarts_keep_the_lowest_ddbi(run, star, tmp_path):
    rep, text = _run(star, tmp_path, seed=3, restarts=2, max_iterations=2)
    rs = rep["restarts"]
    # restart 0 (seed 3) repeats the reference run (seed 3); restart 1 (seed 4) differs
    ref = [r["ddbi"] for r in run[1]["iterations"][:2]]
    recs = {r["restart"]: (r.get("iteration_records") or rep["iterations"]) for r in rs}
    assert [r["ddbi"] for r in recs[0]] == ref
    assert recs[1][0]["ddbi"] != ref[0]
    assert [r["seed"] for r in rs] == [3, 4]
    assert rep["chosen_restart"] == int(np.argmin([r["ddbi"] for r in rs]))
    assert rep["ddbi"] == min(r["ddbi"] for r in rs)
    assert "restart 1 iteration 1/2" in text
    chosen = rep["chosen_restart"]
    assert os.path.isdir(tmp_path / "restarts" / f"restart_{chosen:02d}" / "iterations" / "iter_001")
    np.testing.assert_array_equal(
        np.load(tmp_path / "iterations" / "iter_001" / "labels.npy"),
        np.load(tmp_path / "restarts" / f"restart_{chosen:02d}" / "iterations" / "iter_001" / "labels.npy"))


def test_init_model_starts_from_the_trained_network(run, star, tmp_path):
    outdir, report, _ = run
    rep, text = _run(star, tmp_path, seed=9, max_iterations=1, init_model=str(outdir))
    assert "initialising the network from" in text
    # iteration 1 features come from the saved (lowest-DDBI) network: identical to its features
    np.testing.assert_allclose(np.load(tmp_path / "features.npy"), np.load(os.path.join(outdir, "features.npy")),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(EngineError, match="init-model"):
        _run(star, tmp_path / "x", init_model=str(tmp_path / "nothing"))


# ------------------------------------------------------------------ loop pieces on their own
def test_mixture_from_labels_and_matching_to_previous_labels():
    from disca_engine.clustering.mixtures import assign
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [6, 0], [0, 6]], float)
    truth = np.repeat(np.arange(3), 40)
    Z = centres[truth] + rng.standard_normal((120, 2))
    m = labelling.mixture_from_labels(Z, truth, 3, 1e-5)
    np.testing.assert_allclose(m.means, [Z[truth == j].mean(0) for j in range(3)])
    np.testing.assert_allclose(m.weights, [1 / 3] * 3)
    labels, _, _ = assign(Z, m)
    assert np.mean(labels == truth) > 0.97
    # previous labels permuted: the new labels follow the previous numbering
    prev = np.array([2, 0, 1])[truth]
    method = S.resolve("fast", k_range="3").method
    step = labelling.MixtureLabels(method, method.k_range).label(Z, 1, 0, prev, 3)
    assert np.mean(step.labels == prev) > 0.97 and step.how in ("inherited", "de_novo")
    assert set(step.bics) == {"3"}
    np.testing.assert_allclose(step.mixture.means[prev[0]], Z[prev == prev[0]].mean(0), atol=0.3)


class _CountingNet:
    """Stands in for the network: records what the training loop feeds it."""

    def __init__(self):
        self.batches, self.targets = [], []

    def train_batch(self, volumes, targets):
        self.batches.append(np.array(volumes))
        self.targets.append(np.array(targets))
        return 0.5


class _Particles:
    def __init__(self, vols):
        self.volumes, self.n = vols, len(vols)

    def iter_batches(self, indices, batch_size):
        idx = np.asarray(indices)
        for a in range(0, len(idx), batch_size):
            yield self.volumes[idx[a:a + batch_size]].copy()


def test_training_set_is_originals_plus_one_rotated_copy_each():
    rng = np.random.default_rng(0)
    n, s = 10, 9
    vols = rng.standard_normal((n, s, s, s)).astype(np.float32)
    labels = np.arange(n) % 2
    net = _CountingNet()
    network = S.resolve("fast", batch_size=4, epochs_per_iteration=2).method.network
    train_network(net, _Particles(vols), labels, 2, 0.1, network, seed=0, it=0)
    seen = np.concatenate(net.batches)
    targets = np.concatenate(net.targets)
    assert len(seen) == 2 * (2 * n)  # two epochs of N originals + N rotated copies
    first = seen[:2 * n]
    originals = [i for i in range(n) if any(np.array_equal(vols[i], v) for v in first)]
    assert sorted(originals) == list(range(n))  # every original once per epoch
    # smoothed targets: (1 - a) onehot + a / K with a = 0.1
    assert np.allclose(np.sort(np.unique(targets.round(6))), [0.05, 0.95])
    # the order is shuffled (originals and copies interleave)
    is_orig = [any(np.array_equal(v, o) for o in vols) for v in first]
    assert is_orig != sorted(is_orig, reverse=True)


def test_checkpoint_swap_survives_a_crash_during_writing(tmp_path):
    ck = Checkpoint(str(tmp_path), 0)
    os.makedirs(ck.path + ".old")
    with open(os.path.join(ck.path + ".old", "loop.json"), "w") as fh:
        json.dump({"iteration": 4}, fh)
    os.makedirs(ck.path + ".new")  # a half-written new checkpoint is ignored
    assert ck.exists() and ck._readable() == ck.path + ".old"


def test_k_range_and_pca_size_rules():
    paper = S.resolve("paper")
    with pytest.raises(EngineError, match=r"K range 2:20 needs at least 100 subtomograms.*you have 60.*--k-range"):
        S.check_k_range(paper, 60)
    assert S.check_k_range(paper, 100) == tuple(range(2, 21))
    # auto's own range is an upper bound, capped at 5 members per cluster; a given one is checked
    assert S.check_k_range(S.resolve("auto"), 40) == tuple(range(2, 9))
    with pytest.raises(EngineError, match="K range 2:20 needs at least 100"):
        S.check_k_range(S.resolve("auto", k_range="2:20"), 40)
    assert S.pca_components_for(paper.method, 200) == 16
    fast = S.resolve("fast").method
    assert S.pca_components_for(fast, 200) == 200 // fast.feature_pca.per_subtomograms == 4
    assert S.pca_components_for(S.resolve("fast", pca_components=12).method, 200) == 12
    assert contract.parse_k_range("5,10,20") == [5, 10, 20] and contract.parse_k_range("2:4") == [2, 3, 4]
    with pytest.raises(EngineError):
        contract.parse_k_range("a:b")
    with pytest.raises(EngineError, match="at least 21"):
        S.check_box(paper.method, 16)
