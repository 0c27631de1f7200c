"""`disca-engine cluster` / `predict` command lines: a tiny real run, predict reproducing the
run's labels, a run killed with SIGKILL resumed to the uninterrupted result, resume refusing
another input or settings, --overwrite swapping a run in, and one-line errors."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

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


RUN = ["--preset", "fast", "--k-range", "2:3", "--max-iterations", "3", "--epochs-per-iteration", "1",
       "--batch-size", "16", "--precision", "float32", "--threads", "2", "--seed", "1", "--no-report"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _blobs(str(tmp_path_factory.mktemp("blobs")))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    r = cli("cluster", "--input", data, "--output", out, *RUN)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def _labels(folder):
    return read_star(str(folder / "clusters.star")).column("rlnClassNumber", int)


def _same_result(a, b):
    np.testing.assert_array_equal(_labels(a), _labels(b))
    np.testing.assert_array_equal(np.load(a / "features.npy"), np.load(b / "features.npy"))


def _sigkill_mid_run(data, out):
    """Start a real run, SIGKILL it once its first checkpoint is on disk (inside a later
    iteration), and return the killed process's stdout."""
    proc = subprocess.Popen([sys.executable, "-m", "disca_engine", "cluster", "--input", data, "--output",
                             str(out), *RUN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    first = out / "checkpoint" / "restart_00" / "loop.json"
    deadline = time.time() + 3600  # a starved CI machine may take long to reach it
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.exists(), "no checkpoint was written"
    time.sleep(0.3)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    stdout, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return stdout


def test_sigkilled_run_resumes_to_the_uninterrupted_result(data, reference, tmp_path):
    out = tmp_path / "run"
    stdout = _sigkill_mid_run(data, out)
    assert "iteration 1/3: K=" in stdout and not (out / "clusters.star").exists()
    assert not (out / "report.json").exists()
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    again = cli("cluster", "--input", data, "--output", out, *RUN)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = cli("cluster", "--input", data, "--output", out, *RUN, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming restart 0 after iteration" in resumed.stdout or "from iteration 1" in resumed.stdout
    done = re.search(r"resuming restart 0 after iteration (\d+)/3", resumed.stdout)
    if done is None or int(done.group(1)) < 3:   # killed before the last iteration's checkpoint
        assert "iteration 3/3: K=" in resumed.stdout
    _same_result(reference, out)
    assert not (out / "cache").exists()

    # the checkpoint belongs to this input and these settings only
    other = _blobs(str(tmp_path / "other"), seed=5)  # same N, other particles
    _one_line_error(cli("cluster", "--input", other, "--output", partial, *RUN, "--resume"),
                    "--resume", "v000.mrc", "--overwrite")
    r = cli("cluster", "--input", data, "--output", partial, *RUN, "--resume", "--k-range", "2:4")
    _one_line_error(r, "setting k_range is 2:4, the checkpoint's was 2:3")
    fewer = _blobs(str(tmp_path / "fewer"), n_per_class=10)
    _one_line_error(cli("cluster", "--input", fewer, "--output", partial, *RUN, "--resume"),
                    "20 subtomograms", "had 24")
    # a finished run resumed with another seed is not "nothing to resume"
    r = cli("cluster", "--input", data, "--output", out, *RUN, "--resume", "--seed", "7")
    _one_line_error(r, "setting seed is 7, the checkpoint's was 1")
    same = cli("cluster", "--input", data, "--output", out, *RUN, "--resume")
    assert same.returncode == 0 and "nothing to resume" in same.stdout

    # killed while its only checkpoint was being written: the restart is announced
    ck = partial / "checkpoint"
    for name in os.listdir(ck):
        if name.startswith("restart_00"):
            shutil.rmtree(ck / name)
    os.makedirs(ck / "restart_00.new")
    restarted = cli("cluster", "--input", data, "--output", partial, *RUN, "--resume")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert "restarting it from iteration 1" in restarted.stdout
    _same_result(reference, partial)


def test_killed_between_report_and_clusters_star_is_unfinished_everywhere(data, reference, tmp_path):
    """clusters.star, written last, is the one completion rule: a run killed after report.json
    is resumed to the uninterrupted result, not called finished."""
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "clusters.star").unlink()
    plain = cli("cluster", "--input", data, "--output", out, *RUN)
    _one_line_error(plain, "unfinished clustering run", "--resume")
    model = cli("predict", "--model", out, "--input", data, "--output", tmp_path / "pred")
    _one_line_error(model, "not the output folder of a finished")
    resumed = cli("cluster", "--input", data, "--output", out, *RUN, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "nothing to resume" not in resumed.stdout
    _same_result(reference, out)


def test_the_manifest_lists_what_the_run_wrote_and_a_users_report_folder_is_kept(data, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    owned = json.loads((out / "disca-run.json").read_text())["outputs"]
    assert "report" not in owned and "clusters.star" in owned  # a --no-report run
    assert all((out / n).exists() for n in owned if n != "cache")
    (out / "report").mkdir()
    (out / "report" / "mine.txt").write_text("mine")
    _one_line_error(cli("cluster", "--input", data, "--output", out, *RUN, "--overwrite"),
                    "report that disca-engine did not write")
    _one_line_error(cli("report", out, "--no-decoder"), "was not written by disca-engine")
    assert (out / "report" / "mine.txt").read_text() == "mine"


def test_overwrite_swaps_the_new_run_in_and_keeps_the_users_files(data, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "notes.txt").write_text("mine")
    r = cli("cluster", "--input", data, "--output", out, *RUN, "--seed", "2", "--max-iterations", "1",
            "--overwrite")  # the last of a repeated flag wins
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "report.json").read_text())["seed"] == 2
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / ".disca-new").exists() and not (out / "cache").exists()
    assert len(_labels(out)) == 24


def test_predict_reproduces_labels_and_refuses_to_overwrite(data, reference, tmp_path):
    out = reference
    pred = cli("predict", "--model", out, "--input", data, "--output", tmp_path / "pred")
    assert pred.returncode == 0, pred.stderr[-2000:]
    trained = read_star(str(out / "clusters.star"))
    predicted = read_star(str(tmp_path / "pred" / "clusters.star"))
    assert predicted["discaItemId"] == trained["discaItemId"]
    # same network weights, same inference-mode features, same PCA and mixture: same labels
    np.testing.assert_array_equal(trained.column("rlnClassNumber", int), predicted.column("rlnClassNumber", int))
    np.testing.assert_allclose(trained.column("rlnMaxValueProbDistribution", float),
                               predicted.column("rlnMaxValueProbDistribution", float), atol=1e-4)
    report = json.loads((out / "report.json").read_text())
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert sum(summary["counts"].values()) == 24 and summary["k"] == report["k"]
    assert not (tmp_path / "pred" / "cache").exists()
    # clusters.star lives in another folder than the input STAR: its image names must
    # still point at the subtomograms
    for table in (trained, predicted):
        for name in table["rlnImageName"]:
            path = name.split("@", 1)[-1]
            assert os.path.isabs(path) and os.path.isfile(path), name
    again = cli("predict", "--model", out, "--input", data, "--output", tmp_path / "pred")
    _one_line_error(again, "already holds", "--overwrite")
    again = cli("predict", "--model", out, "--input", data, "--output", tmp_path / "pred", "--overwrite")
    assert again.returncode == 0, again.stderr[-2000:]


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
    (tmp_path / "report.json").write_text("{}")  # a run made before disca-run.json existed
    (tmp_path / "clusters.star").write_text("")
    _one_line_error(cli("cluster", "--input", data, "--output", tmp_path), "finished", "--overwrite")


def test_bad_k_range_syntax(data, tmp_path):
    _one_line_error(cli("cluster", "--input", data, "--output", tmp_path, "--k-range", "two:five"), "--k-range")


def test_no_relabel_and_no_junk_split_switch_those_steps_off(data, tmp_path):
    """The default preset runs both steps and reports their settings; the switches leave
    them out of the run, its log and its report; other presets refuse them."""
    auto = ["--k-range", "2:3", "--max-iterations", "1", "--precision", "float32", "--threads", "2",
            "--no-report"]
    runs = {}
    for name, flags in (("on", []), ("off", ["--no-relabel", "--no-junk-split"])):
        r = cli("cluster", "--input", data, "--output", tmp_path / name, *auto, *flags)
        assert r.returncode == 0, r.stderr[-2000:]
        with open(tmp_path / name / "report.json") as fh:
            runs[name] = (r.stdout, json.load(fh)["settings"]["classification"])
    log, settings = runs["on"]
    assert "relabel (two views)" in log and "junk split" in log
    assert settings["relabel"] is True and settings["junk_split"]["position"] == 0.2
    log, settings = runs["off"]
    assert "relabel (two views)" not in log and "junk split:" not in log and "merge test" in log
    assert settings["relabel"] is False and "junk_split" not in settings
    _one_line_error(cli("cluster", "--input", data, "--output", tmp_path / "fast", *RUN,
                        "--no-relabel"), "--no-relabel", "only auto")
    assert not (tmp_path / "fast").exists()

# ---------------------------------------------------------------- a disk that fills while the run writes
# (conftest: real small tmpfs disks; the free-space check made to pass, as when another job
# fills the disk after the run has started). Sizes of this tiny run: cache 107 KiB, one
# checkpoint about 1.3 MB, then model, features, plots and averages about 0.6 MB more.
def test_disk_full_while_loading_is_one_line_and_leaves_no_partial_stack(
        data, tmp_path, small_disk, cli_past_the_space_check):
    cache = small_disk("64k") / "cache"
    r = cli_past_the_space_check("cluster", "--input", data, "--output", tmp_path / "run", *RUN,
                                 "--cache-dir", cache)
    _one_line_error(r, str(cache / "stack.f32.partial"), "No space left on device", "free space")
    assert os.listdir(cache) == [] and not (tmp_path / "run").exists()


def test_disk_full_at_the_first_checkpoint_leaves_the_folder_as_it_was(
        data, tmp_path, small_disk, cli_past_the_space_check):
    out = small_disk("512k") / "run"
    r = cli_past_the_space_check("cluster", "--input", data, "--output", out, *RUN,
                                 "--cache-dir", tmp_path / "cache")
    _one_line_error(r, str(out / "checkpoint"), "No space left on device")
    assert not out.exists()


def test_disk_full_in_the_final_writes_keeps_the_checkpoint_and_says_resume(
        data, tmp_path, small_disk, cli_past_the_space_check):
    from conftest import resize
    out = small_disk("1536k") / "run"
    args = ["cluster", "--input", data, "--output", out, *RUN, "--max-iterations", "1"]
    r = cli_past_the_space_check(*args, "--cache-dir", tmp_path / "cache")
    _one_line_error(r, str(out), "No space left on device", "checkpoint is kept", "--resume")
    assert (out / "checkpoint").is_dir() and not (out / "clusters.star").exists()
    assert not (out / "report.json").exists()  # nothing that looks like a result
    resize(out.parent, "16m")  # the user frees space, as the line says, and resumes
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(_labels(out)) == 24


def test_disk_full_while_predict_writes_averages_leaves_nothing(
        data, reference, tmp_path, small_disk, cli_past_the_space_check):
    out = small_disk("16k") / "pred"
    r = cli_past_the_space_check("predict", "--model", reference, "--input", data, "--output", out,
                                 "--cache-dir", tmp_path / "cache")
    _one_line_error(r, "averages", "No space left on device")
    assert not out.exists()
