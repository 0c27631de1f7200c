"""The multi-device path (MirroredStrategy, global batch split across replicas) run for real
without GPUs: the CPU is split into two logical devices (DISCA_CPU_DEVICES=2, read before
TensorFlow initialises, so every run is its own process) and the labels are compared with
one-device runs. Also the one-line errors for --gpus that cannot be honoured.
benchmarks/gpu_check.sh runs the same tests with DISCA_TEST_SPLIT_ENV=DISCA_GPU_SPLIT (two
logical GPUs on one GPU)."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from disca_engine.clustering.network.runtime import CPU_DEVICES_ENV, GPU_SPLIT_ENV  # noqa: E402
from disca_engine.io.star import read_star  # noqa: E402

RUN = ["--preset", "fast", "--k-range", "2:4", "--max-iterations", "2", "--epochs-per-iteration", "1",
       "--batch-size", "16", "--precision", "float32", "--threads", "2", "--seed", "2", "--no-report"]
# Training differs between one and two devices by design (each replica normalises its half
# batch with its own BatchNorm statistics), so after training the clusterings must agree on
# at least this fraction of subtomograms (cluster numbers matched); inference is the same
# maths per subtomogram and must give identical labels.
TRAINED_AGREEMENT = 0.9
SPLIT_ENV = os.environ.get("DISCA_TEST_SPLIT_ENV", CPU_DEVICES_ENV)
TWO_DEVICES = "MirroredStrategy over 2 "


def cli(*args, devices=None):
    env = {k: v for k, v in os.environ.items() if k not in (CPU_DEVICES_ENV, GPU_SPLIT_ENV)}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if devices:
        env[SPLIT_ENV] = str(devices)
    return subprocess.run([sys.executable, "-m", "disca_engine", *map(str, args)], capture_output=True,
                          text=True, env=env)


def labels_of(folder):
    return np.array([int(c) for c in read_star(os.path.join(folder, "clusters.star"))["rlnClassNumber"]])


def matched_agreement(a, b):
    """Fraction of equal labels after the best one-to-one renumbering of ``b``."""
    from scipy.optimize import linear_sum_assignment
    ka, kb = a.max() + 1, b.max() + 1
    table = np.zeros((ka, kb), int)
    np.add.at(table, (a, b), 1)
    rows, cols = linear_sum_assignment(-table)
    return table[rows, cols].sum() / len(a)


@pytest.fixture(scope="module")
def star(tmp_path_factory):
    import contextlib
    import io
    from disca_engine.simulate import simulate_subtomograms
    folder = tmp_path_factory.mktemp("sim")
    with contextlib.redirect_stdout(io.StringIO()):
        return simulate_subtomograms(str(folder), classes=3, n_per_class=12, snr=1.0, size=21,
                                     voxel_A=20.0, seed=1)


@pytest.fixture(scope="module")
def runs(star, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for devices in (1, 2):
        folder = root / f"cluster_{devices}"
        proc = cli("cluster", "--input", star, "--output", folder, *RUN, devices=devices if devices > 1 else None)
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-2000:]
        out[devices] = (folder, proc.stdout)
    return out


def test_cluster_on_two_logical_devices_agrees_with_one(runs):
    (one, one_log), (two, two_log) = runs[1], runs[2]
    assert TWO_DEVICES in two_log
    assert "MirroredStrategy" not in one_log
    # iteration 1: same initial weights, inference only -> the same features and labels
    z1 = np.load(one / "iterations" / "iter_001" / "features_pca.npy")
    z2 = np.load(two / "iterations" / "iter_001" / "features_pca.npy")
    np.testing.assert_allclose(z2, z1, rtol=1e-3, atol=1e-4 * np.abs(z1).max())
    np.testing.assert_array_equal(np.load(two / "iterations" / "iter_001" / "labels.npy"),
                                  np.load(one / "iterations" / "iter_001" / "labels.npy"))
    # after training (per-replica BatchNorm statistics): agreement within the stated tolerance
    assert matched_agreement(labels_of(one) - 1, labels_of(two) - 1) >= TRAINED_AGREEMENT


@pytest.fixture(scope="module")
def predictions(runs, star, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    results = {}
    for devices in (1, 2):
        out = root / f"predict_{devices}"
        # batch 7: the last batch (36 = 5 x 7 + 1) must be padded to split over 2 replicas
        proc = cli("predict", "--model", runs[1][0], "--input", star, "--output", out, "--batch-size", "7",
                   "--threads", "2", devices=devices if devices > 1 else None)
        assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-2000:]
        table = read_star(os.path.join(out, "clusters.star"))
        results[devices] = (out, table, proc.stdout)
    return results


def test_predict_on_two_logical_devices_reproduces_one_device(runs, predictions):
    (_, one, _), (_, two, two_log) = predictions[1], predictions[2]
    assert TWO_DEVICES in two_log
    assert two["rlnClassNumber"] == one["rlnClassNumber"]
    np.testing.assert_allclose(np.array(two["rlnMaxValueProbDistribution"], float),
                               np.array(one["rlnMaxValueProbDistribution"], float), atol=1e-4)
    # and the one-device predict gives the run's own labels back (same network, PCA, mixture)
    labels = np.array([int(c) for c in one["rlnClassNumber"]])
    assert np.mean(labels == labels_of(runs[1][0])) >= 0.95


def test_predict_writes_class_averages(predictions, star):
    import mrcfile
    from disca_engine.io.mrc import read_image
    out, table, _ = predictions[1]
    labels = np.array([int(c) for c in table["rlnClassNumber"]])
    written = sorted(os.listdir(out / "averages"))
    assert written == [f"class_{c:03d}.mrc" for c in np.unique(labels)]
    # the engine's average is the mean of the normalised members (dataset normalisation)
    c = int(np.unique(labels)[0])
    members = [read_image(n, os.path.dirname(star)) for n, lab in zip(table["rlnImageName"], labels) if lab == c]
    members = [(m - m.mean()) / m.std() for m in members]
    with mrcfile.open(out / "averages" / f"class_{c:03d}.mrc") as mrc:
        np.testing.assert_allclose(mrc.data, np.mean(members, axis=0), atol=1e-4)
        assert mrc.voxel_size.x == pytest.approx(20.0)


@pytest.mark.parametrize("command, gpus, words", [("predict", "7", "--gpus 7"), ("cluster", "7", "--gpus 7"),
                                                   ("predict", "0,0", "distinct GPU ids"), ("cluster", "a", "--gpus a")])
def test_gpus_that_cannot_be_used_fail_in_one_line(runs, star, tmp_path, command, gpus, words):
    args = ["predict", "--model", runs[1][0]] if command == "predict" else ["cluster", *RUN]
    out = tmp_path / "out"
    proc = cli(*args, "--input", star, "--output", out, "--gpus", gpus)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()  # nothing written before the check


def test_bad_logical_device_count_fails_in_one_line(star, tmp_path):
    proc = cli("cluster", "--input", star, "--output", tmp_path / "x", *RUN, devices="two")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and SPLIT_ENV in lines[0], proc.stderr
    assert not (tmp_path / "x").exists()
