"""`disca-engine cluster` / `predict` command lines: a tiny real run, predict reproducing the
run's labels, a killed run resumed from its checkpoint, and one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from disca_engine.io.mrc import write_volume  # noqa: E402
from disca_engine.io.star import StarTable, read_star, write_star  # noqa: E402

BOX = 13  # smallest box the fast network (6 valid convolutions) accepts


def _blobs(folder, n_per_class=12, box=BOX, seed=0):
    """Two classes of easy synthetic volumes: a sphere and a bar, plus noise."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    z, y, x = np.mgrid[:box, :box, :box] - box // 2
    shapes = [(x ** 2 + y ** 2 + z ** 2 < 9).astype(np.float32),
              ((abs(x) < 5) & (abs(y) < 2) & (abs(z) < 2)).astype(np.float32)]
    names, truth = [], []
    for i in range(2 * n_per_class):
        c = i % 2
        vol = shapes[c] * 3 + rng.standard_normal((box,) * 3).astype(np.float32)
        name = f"v{i:03d}.mrc"
        write_volume(os.path.join(folder, name), vol, 10.0)
        names.append(name)
        truth.append(c + 1)
    star = os.path.join(folder, "particles.star")
    write_star(star, StarTable({"rlnImageName": names, "discaTrueClass": truth,
                                "discaItemId": list(range(1, len(names) + 1))}, "particles"))
    return star


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "disca_engine", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


RUN = ["--preset", "fast", "--k-range", "2:3", "--max-iterations", "2", "--epochs-per-iteration", "1",
       "--batch-size", "16", "--precision", "float32", "--threads", "2", "--seed", "1", "--no-report"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _blobs(str(tmp_path_factory.mktemp("blobs")))


def test_killed_run_resumes_and_predict_reproduces_labels(data, tmp_path):
    out = tmp_path / "run"
    killed = cli("cluster", "--input", data, "--output", out, *RUN,
                 env={"DISCA_TEST_KILL_AFTER_ITERATION": "1"})
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert "iteration 1/2: K=" in killed.stdout and not (out / "report.json").exists()
    again = cli("cluster", "--input", data, "--output", out, *RUN)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = cli("cluster", "--input", data, "--output", out, *RUN, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming restart 0 after iteration 1/2" in resumed.stdout
    assert "iteration 2/2: K=" in resumed.stdout
    report = json.loads((out / "report.json").read_text())
    assert len(report["iterations"]) == 2

    pred = cli("predict", "--model", out, "--input", data, "--output", tmp_path / "pred")
    assert pred.returncode == 0, pred.stderr[-2000:]
    trained = read_star(str(out / "clusters.star"))
    predicted = read_star(str(tmp_path / "pred" / "clusters.star"))
    assert predicted["discaItemId"] == trained["discaItemId"]
    # same network weights, same inference-mode features, same PCA and mixture: same labels
    a = np.asarray(trained.column("rlnClassNumber", int))
    b = np.asarray(predicted.column("rlnClassNumber", int))
    assert np.mean(a == b) >= 0.95
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(trained.column("rlnMaxValueProbDistribution", float),
                               predicted.column("rlnMaxValueProbDistribution", float), atol=1e-4)
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert sum(summary["counts"].values()) == 24 and summary["k"] == report["k"]
    assert not (tmp_path / "pred" / "cache").exists()
    # clusters.star lives in another folder than the input STAR: its image names must
    # still point at the subtomograms
    for table in (trained, predicted):
        for name in table["rlnImageName"]:
            path = name.split("@", 1)[-1]
            assert os.path.isabs(path) and os.path.isfile(path), name


def _one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("disca-engine")]
    assert len(lines) == 1
    for f in fragments:
        assert f in lines[0], lines[0]


def test_k_range_too_large_for_n(data, tmp_path):
    r = cli("cluster", "--input", data, "--output", tmp_path, "--k-range", "2:20")
    _one_line_error(r, "K range 2:20 needs", "you have 24 subtomograms", "lower --k-range")


def test_paper_preset_needs_box_21(data, tmp_path):
    r = cli("cluster", "--input", data, "--output", tmp_path, "--preset", "paper", "--k-range", "2:3")
    _one_line_error(r, "21")


def test_unreadable_init_model_and_missing_input(data, tmp_path):
    _one_line_error(cli("cluster", "--input", data, "--output", tmp_path / "a", "--init-model", tmp_path / "none"),
                    "--init-model")
    _one_line_error(cli("cluster", "--input", tmp_path / "missing.star", "--output", tmp_path / "b"),
                    "missing.star")
    _one_line_error(cli("predict", "--model", tmp_path / "none", "--input", data, "--output", tmp_path / "c"),
                    "--model")


def test_finished_run_needs_overwrite(data, tmp_path):
    (tmp_path / "report.json").write_text("{}")
    _one_line_error(cli("cluster", "--input", data, "--output", tmp_path), "finished", "--overwrite")


def test_bad_k_range_syntax(data, tmp_path):
    _one_line_error(cli("cluster", "--input", data, "--output", tmp_path, "--k-range", "two:five"), "--k-range")
