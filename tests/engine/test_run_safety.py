"""Runs that never destroy, never mix and never lie (issue 9): every bad input ends as one
clear line with exit 2, checked before anything is computed, and nothing the user already
had is lost. These need no TensorFlow: every case fails before the network is built."""
import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
import types

import mrcfile
import numpy as np
import pytest

from disca_engine.cli import main
from disca_engine.io.mrc import write_volume
from disca_engine.io.star import StarTable, read_star, write_star

BOX = 13


def cli(*args, env=None):
    """``disca-engine ARGS``: in a subprocess when ``env`` is given, else in this process
    (same parser, same error handling and exit codes, without a second of start-up per
    call); an exception escaping main() is reported as the traceback a user would see."""
    argv = [str(a) for a in args]
    if env is not None:
        return subprocess.run([sys.executable, "-m", "disca_engine", *argv], capture_output=True,
                              text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env})
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - what the user would see
            traceback.print_exc()
            code = 1
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("disca-engine")]
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def particles(folder, n=12, box=BOX, seed=0, prefix="v", voxel=10.0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(n):
        name = f"{prefix}{i:03d}.mrc"
        write_volume(os.path.join(folder, name), rng.standard_normal((box,) * 3).astype(np.float32), voxel)
        names.append(name)
    star = os.path.join(folder, "particles.star")
    write_star(star, StarTable({"rlnImageName": names}, "particles"))
    return star


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = fh.read()
    return out


@pytest.fixture
def finished_run(tmp_path):
    """A folder that looks like a finished cluster run, plus a file of the user's."""
    out = tmp_path / "run"
    for rel in ("clusters.star", "report.json", "model/model.keras", "model/pca.npz", "model/gmm.npz",
                "plots/bic.png", "averages/class_001.mrc", "iterations/iter_001/labels.npy",
                "checkpoint/restart_00/loop.json", "my_notes.txt"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(f"old {rel}")
    (out / "report.json").write_text(json.dumps({"box_size": BOX, "voxel_size": 10.0, "settings": {}}))
    return out


# ---------------------------------------------------------------- never destroy
@pytest.mark.parametrize("bad", [["--k-range", "5:2"], ["--k-range", "two"], ["--k-range", "2:20"],
                                 ["--max-iterations", "0"], ["--input-missing"]])
def test_overwrite_validates_everything_before_touching_the_old_run(tmp_path, finished_run, bad):
    star = particles(str(tmp_path / "data"))
    before = snapshot(finished_run)
    if bad == ["--input-missing"]:
        os.remove(str(tmp_path / "data" / "v005.mrc"))
        bad = []
    r = cli("cluster", "--input", star, "--output", finished_run, "--overwrite", *bad)
    one_line_error(r)
    assert snapshot(finished_run) == before


def test_users_own_folders_are_never_taken(tmp_path):
    star = particles(str(tmp_path / "data"))
    out = tmp_path / "mine"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "figure.png").write_text("mine")
    for extra in ([], ["--overwrite"]):
        one_line_error(cli("cluster", "--input", star, "--output", out, "--k-range", "2:2", *extra),
                       "plots", "did not write")
        assert (out / "plots" / "figure.png").read_text() == "mine"


def test_resume_and_overwrite_together_is_refused(tmp_path, finished_run):
    star = particles(str(tmp_path / "data"))
    one_line_error(cli("cluster", "--input", star, "--output", finished_run, "--resume", "--overwrite"),
                   "--resume", "--overwrite")


def test_resume_without_a_fingerprint_is_refused(tmp_path, finished_run):
    star = particles(str(tmp_path / "data"))
    before = snapshot(finished_run)
    one_line_error(cli("cluster", "--input", star, "--output", finished_run, "--resume", "--k-range", "2:2"),
                   "--resume", "fingerprint")
    assert snapshot(finished_run) == before


# ---------------------------------------------------------------- check before computing
@pytest.mark.parametrize("flag,value,text", [("--max-iterations", 0, "--max-iterations 0"),
                                             ("--restarts", 0, "--restarts 0"),
                                             ("--batch-size", 0, "--batch-size 0"),
                                             ("--seed", -1, "--seed -1"),
                                             ("--epochs-per-iteration", 0, "--epochs-per-iteration 0")])
def test_impossible_settings_are_one_line(tmp_path, flag, value, text):
    star = particles(str(tmp_path / "data"))
    one_line_error(cli("cluster", "--input", star, "--output", tmp_path / "out", "--k-range", "2:2",
                       flag, value), text)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("k,text", [("1", "at least 2"), ("5:2", "MIN 5 is larger than MAX 2"),
                                    ("0:3", "at least 2"), ("", "empty")])
def test_k_ranges_that_cannot_work(tmp_path, k, text):
    star = particles(str(tmp_path / "data"))
    one_line_error(cli("cluster", "--input", star, "--output", tmp_path / "out", "--k-range", k), text)
    assert not (tmp_path / "out").exists()


def test_k_range_too_large_is_found_before_loading_and_leaves_nothing(tmp_path):
    star = particles(str(tmp_path / "data"))
    out = tmp_path / "out"
    one_line_error(cli("cluster", "--input", star, "--output", out, "--k-range", "2:20"),
                   "K range 2:20 needs", "you have 12")
    assert not out.exists()  # no cache/stack.f32, no empty folder
    out.mkdir()
    one_line_error(cli("cluster", "--input", star, "--output", out, "--k-range", "2:20"), "K range")
    assert os.listdir(out) == []


def test_a_failure_while_loading_leaves_the_folder_as_it_was(tmp_path):
    star = particles(str(tmp_path / "data"))
    write_volume(str(tmp_path / "data" / "v009.mrc"), np.full((BOX,) * 3, np.nan, np.float32), 10.0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    one_line_error(cli("cluster", "--input", star, "--output", out, "--k-range", "2:2"), "row 10", "NaN")
    assert os.listdir(out) == ["mine.txt"]  # no cache, no checkpoint, no manifest
    one_line_error(cli("cluster", "--input", star, "--output", tmp_path / "new", "--k-range", "2:2"), "NaN")
    assert not (tmp_path / "new").exists()


def test_box_too_small_is_found_before_loading(tmp_path):
    star = particles(str(tmp_path / "data"), box=9)
    one_line_error(cli("cluster", "--input", star, "--output", tmp_path / "out", "--k-range", "2:2"), "13")
    assert not (tmp_path / "out").exists()


def test_a_missing_subtomogram_is_found_before_the_output_is_made(tmp_path):
    star = particles(str(tmp_path / "data"))
    os.remove(str(tmp_path / "data" / "v007.mrc"))
    one_line_error(cli("cluster", "--input", star, "--output", tmp_path / "out", "--k-range", "2:2"),
                   "row 8", "v007.mrc")
    assert not (tmp_path / "out").exists()


def test_a_missing_absolute_image_name_is_one_line(tmp_path):
    star = particles(str(tmp_path / "data"))
    table = read_star(star)
    table["rlnImageName"] = [str(tmp_path / "data" / n) for n in table["rlnImageName"]]
    write_star(star, table)
    os.remove(str(tmp_path / "data" / "v003.mrc"))
    one_line_error(cli("cluster", "--input", star, "--output", tmp_path / "out", "--k-range", "2:2"),
                   "row 4", "v003.mrc", "not found")
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_or_under_a_file(tmp_path):
    star = particles(str(tmp_path / "data"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(cli("cluster", "--input", star, "--output", afile, "--k-range", "2:2"), "is a file")
    one_line_error(cli("cluster", "--input", star, "--output", afile / "sub", "--k-range", "2:2"), "is a file")
    one_line_error(cli("simulate", "subtomos", afile / "sim", "--n-per-class", "1"), "is a file")
    one_line_error(cli("predict", "--model", tmp_path, "--input", star, "--output", afile), "--model")
    assert afile.read_text() == "x"


def test_unwritable_output_folders_are_found_first(tmp_path, monkeypatch):
    """Tests run as root, who may write anywhere: the permission probe is made to say no."""
    import disca_engine.io.outdir as outdir
    star = particles(str(tmp_path / "data"))
    tomo = tomogram(tmp_path / "tomo.mrc")
    c = coords(tmp_path / "c.star", [(20, 20, 20)])
    monkeypatch.setattr(outdir.os, "access", lambda path, mode: False)
    ro = tmp_path / "readonly"
    ro.mkdir()
    for args in (["cluster", "--input", star, "--output", ro / "run", "--k-range", "2:2"],
                 ["pick", "--input", tomo, "--output", ro / "c.star", "--particle-diameter-A", 60],
                 ["extract", "--tomogram", tomo, "--coords", c, "--output", ro / "ex", "--box", 8],
                 ["simulate", "subtomos", ro / "sim", "--n-per-class", "1"]):
        one_line_error(cli(*args), "no permission")
    assert os.listdir(ro) == []


def test_simulate_replaces_an_earlier_simulation_only_with_overwrite(tmp_path):
    sim = tmp_path / "sim"
    args = ["simulate", "subtomos", sim, "--n-per-class", "2", "--size", "24", "--classes", "ribosome,ring"]
    assert cli(*args).returncode == 0
    first = sorted(os.listdir(sim / "subtomos"))
    one_line_error(cli(*args), "not empty", "--overwrite")
    kept = snapshot(sim)
    one_line_error(cli(*args, "--snr", "-1", "--overwrite"), "--snr")
    assert snapshot(sim) == kept  # a failed --overwrite leaves the earlier simulation as it was
    r = cli(*args[:4], "1", *args[5:], "--overwrite")  # fewer boxes: the earlier ones must go
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(sim / "subtomos")) == 2 < len(first)
    assert len(read_star(str(sim / "particles.star"))) == 2
    (sim / "mine.txt").write_text("mine")
    one_line_error(cli(*args, "--overwrite"), "mine.txt", "did not write")
    assert (sim / "mine.txt").read_text() == "mine"


def test_simulate_early_errors_leave_no_folder(tmp_path):
    one_line_error(cli("simulate", "subtomos", tmp_path / "sim", "--snr", "-1", "--n-per-class", "1"), "--snr")
    assert not (tmp_path / "sim").exists()


# ---------------------------------------------------------------- predict
@pytest.fixture
def fake_tensorflow(tmp_path):
    """PYTHONPATH with tensorflow/keras that fail on import: a command that imports them
    before its checks shows a traceback instead of the expected line."""
    root = tmp_path / "fake_tf"
    for mod in ("tensorflow", "keras"):
        (root / mod).mkdir(parents=True)
        (root / mod / "__init__.py").write_text(f"raise ImportError('{mod} imported before the checks')\n")
    return {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def test_predict_checks_the_model_before_tensorflow_and_makes_no_folder(tmp_path, fake_tensorflow):
    star = particles(str(tmp_path / "data"))
    r = cli("predict", "--model", tmp_path / "nothing", "--input", star, "--output", tmp_path / "pred",
            env=fake_tensorflow)
    one_line_error(r, "--model", "not the output folder")
    assert not (tmp_path / "pred").exists()


def test_predict_refuses_an_unfinished_run(tmp_path, finished_run, fake_tensorflow):
    star = particles(str(tmp_path / "data"))
    os.remove(str(finished_run / "clusters.star"))  # killed before its completion marker
    one_line_error(cli("predict", "--model", finished_run, "--input", star, "--output", tmp_path / "p",
                       env=fake_tensorflow), "not the output folder of a finished", "clusters.star")


def test_predict_refuses_an_earlier_output(tmp_path, finished_run, fake_tensorflow):
    star = particles(str(tmp_path / "data"))
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "clusters.star").write_text("earlier")
    r = cli("predict", "--model", finished_run, "--input", star, "--output", pred, env=fake_tensorflow)
    one_line_error(r, "already holds", "--overwrite")
    assert (pred / "clusters.star").read_text() == "earlier"


def test_predict_box_mismatch_before_tensorflow(tmp_path, finished_run, fake_tensorflow):
    star = particles(str(tmp_path / "data"), box=15)
    one_line_error(cli("predict", "--model", finished_run, "--input", star, "--output", tmp_path / "p",
                       env=fake_tensorflow), "trained on 13^3", "15^3")
    assert not (tmp_path / "p").exists()


def test_predict_voxel_size_mismatch_before_tensorflow(tmp_path, finished_run, fake_tensorflow):
    star = particles(str(tmp_path / "data"), voxel=5.0)
    one_line_error(cli("predict", "--model", finished_run, "--input", star, "--output", tmp_path / "p",
                       env=fake_tensorflow), "trained at 10 A/voxel", "at 5 A/voxel", "extract")
    assert not (tmp_path / "p").exists()
    near = particles(str(tmp_path / "near"), voxel=10.1)  # header rounding is not a mismatch
    r = cli("predict", "--model", finished_run, "--input", near, "--output", tmp_path / "q",
            env=fake_tensorflow)
    assert "A/voxel" not in r.stderr


# ---------------------------------------------------------------- pick / extract
def tomogram(path, shape=(40, 48, 56), seed=0):
    rng = np.random.default_rng(seed)
    write_volume(str(path), rng.standard_normal(shape).astype(np.float32), 10.0)
    return path


def coords(path, xyz, name="tomo"):
    write_star(str(path), StarTable({"rlnTomoName": [name] * len(xyz),
                                     "rlnCoordinateX": [p[0] for p in xyz],
                                     "rlnCoordinateY": [p[1] for p in xyz],
                                     "rlnCoordinateZ": [p[2] for p in xyz]}, "coordinates"))
    return path


def test_pick_checks_its_output_first(tmp_path):
    tomo = tomogram(tmp_path / "tomo.mrc")
    one_line_error(cli("pick", "--input", tomo, "--output", tmp_path, "--particle-diameter-A", 60),
                   "is a folder", "coords.star")
    (tmp_path / "afile").write_text("x")
    one_line_error(cli("pick", "--input", tomo, "--output", tmp_path / "afile" / "c.star",
                       "--particle-diameter-A", 60), "is a file")


def test_pick_keeps_an_earlier_output_unless_overwrite(tmp_path):
    tomo = tomogram(tmp_path / "tomo.mrc")
    out = tmp_path / "c.star"
    out.write_text("earlier picks")
    one_line_error(cli("pick", "--input", tomo, "--output", out, "--particle-diameter-A", 60),
                   "already exists", "--overwrite")
    assert out.read_text() == "earlier picks"
    r = cli("pick", "--input", tomo, "--output", out, "--particle-diameter-A", 60, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("#")


def test_pick_refuses_a_2d_image_and_a_particle_larger_than_the_tomogram(tmp_path):
    image = tmp_path / "image.mrc"
    with mrcfile.new(str(image)) as m:
        m.set_data(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
        m.voxel_size = 10.0
    one_line_error(cli("pick", "--input", image, "--output", tmp_path / "c.star", "--particle-diameter-A", 60),
                   "2D image")
    tomo = tomogram(tmp_path / "tomo.mrc")
    one_line_error(cli("pick", "--input", tomo, "--output", tmp_path / "c.star", "--particle-diameter-A", 5000),
                   "500 voxels", "--particle-diameter-A")
    assert not (tmp_path / "c.star").exists()


def test_extract_refuses_an_earlier_output_and_overwrite_removes_its_stale_boxes(tmp_path):
    tomo = tomogram(tmp_path / "tomo.mrc")
    c1 = coords(tmp_path / "c1.star", [(20, 20, 20), (30, 25, 20), (28, 30, 18)])
    out = tmp_path / "ex"
    assert cli("extract", "--tomogram", tomo, "--coords", c1, "--output", out, "--box", 8).returncode == 0
    (out / "mine.txt").write_text("mine")
    assert len(os.listdir(out / "subtomos")) == 3
    c2 = coords(tmp_path / "c2.star", [(21, 21, 21)])
    before = snapshot(out)
    one_line_error(cli("extract", "--tomogram", tomo, "--coords", c2, "--output", out, "--box", 8),
                   "already holds", "--overwrite")
    assert snapshot(out) == before
    r = cli("extract", "--tomogram", tomo, "--coords", c2, "--output", out, "--box", 8, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert len(read_star(str(out / "particles.star"))) == 1
    assert os.listdir(out / "subtomos") == ["tomo_000000.mrc"]
    assert (out / "mine.txt").read_text() == "mine"


def test_outputs_that_would_replace_their_inputs_are_refused(tmp_path, finished_run, fake_tensorflow):
    tomo = tomogram(tmp_path / "tomo.mrc")
    before = tomo.read_bytes()
    one_line_error(cli("pick", "--input", tomo, "--output", tomo, "--particle-diameter-A", 60),
                   "would replace the tomogram")
    assert tomo.read_bytes() == before
    out = tmp_path / "ex"
    out.mkdir()
    c = coords(out / "particles.star", [(20, 20, 20), (30, 25, 20)])  # the name extract writes
    kept = c.read_bytes()
    one_line_error(cli("extract", "--tomogram", tomo, "--coords", c, "--output", out, "--box", 8,
                       "--overwrite"), "would replace the coordinates")
    assert c.read_bytes() == kept
    (out / "subtomos").mkdir()
    inner = tomogram(out / "subtomos" / "t.mrc")
    one_line_error(cli("extract", "--tomogram", inner, "--coords", coords(tmp_path / "c.star", [(20, 20, 20)], name="t"),
                       "--output", out, "--box", 8, "--overwrite"), "would replace the tomogram")
    star = particles(str(tmp_path / "data"))
    old = snapshot(finished_run)
    one_line_error(cli("predict", "--model", finished_run, "--input", star, "--output", finished_run,
                       "--overwrite", env=fake_tensorflow), "would write into the model's run folder")
    assert snapshot(finished_run) == old
    # clustering a run's own clusters.star back into that run
    run_star = particles(str(tmp_path / "run2"), prefix="w")
    os.replace(run_star, tmp_path / "run2" / "clusters.star")
    one_line_error(cli("cluster", "--input", tmp_path / "run2" / "clusters.star", "--output", tmp_path / "run2",
                       "--overwrite", env=fake_tensorflow), "would replace the input")


def hold_lock(folder):
    """Another process holding ``folder``'s lock (as a second run of a resubmitted job)."""
    code = ("import sys, time; from disca_engine.io.lock import FolderLock\n"
            "with FolderLock(sys.argv[1], 'cluster'):\n    print('locked', flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_one_run_per_folder_and_a_killed_holder_leaves_it_free(tmp_path, finished_run, fake_tensorflow):
    import shutil
    from disca_engine.io.lock import LOCK_NAME, FolderLock
    star = particles(str(tmp_path / "data"))
    shutil.copytree(finished_run, tmp_path / "model")
    holder = hold_lock(finished_run)
    try:
        old = snapshot(finished_run)
        for command in (["cluster", "--input", star, "--output", finished_run, "--overwrite"],
                        ["predict", "--model", tmp_path / "model", "--input", star, "--output", finished_run,
                         "--overwrite"]):
            line = one_line_error(cli(*command, env=fake_tensorflow), "in use by another run",
                                  f"pid {holder.pid}", "wait for it")
            assert "disca-engine cluster" in line
        assert snapshot(finished_run) == old
    finally:
        holder.kill()
        holder.wait()
    assert (finished_run / LOCK_NAME).exists()  # a SIGKILLed holder cannot remove it ...
    with FolderLock(finished_run, "cluster"):  # ... and holds nothing any more
        pass
    assert not (finished_run / LOCK_NAME).exists()  # a run that ends removes it


def test_outputs_beside_their_inputs_are_accepted(tmp_path):
    """The plugin's layouts: coordinates and boxes in one folder, a prediction's input STAR in
    its output folder, a run folder inside the data's folder."""
    from disca_engine.io.outdir import refuse_overwriting_inputs
    out = tmp_path / "ex"
    refuse_overwriting_inputs([out / "particles.star", out / "subtomos"], [("coordinates", out / "coords.star")])
    refuse_overwriting_inputs([tmp_path / "chunk" / "clusters.star"], [("input", tmp_path / "chunk" / "particles.star")],
                              folders=[("model's run folder", tmp_path / "run")])
    refuse_overwriting_inputs([tmp_path / "data" / "run" / "clusters.star"],
                              [("subtomogram", tmp_path / "data" / "subtomos" / "a.mrc")])


def test_extract_with_every_coordinate_outside_is_an_error(tmp_path):
    tomo = tomogram(tmp_path / "tomo.mrc")
    c = coords(tmp_path / "c.star", [(500, 500, 500), (-40, 3, 3)])
    one_line_error(cli("extract", "--tomogram", tomo, "--coords", c, "--output", tmp_path / "ex", "--box", 8),
                   "none of the 2 coordinates")
    assert not (tmp_path / "ex").exists()


def test_extract_checks_the_tomogram_name(tmp_path):
    tomo = tomogram(tmp_path / "tomo.mrc")
    other = coords(tmp_path / "c.star", [(20, 20, 20)], name="other_tomo")
    one_line_error(cli("extract", "--tomogram", tomo, "--coords", other, "--output", tmp_path / "ex",
                       "--box", 8), "other_tomo", "--tomo-name")
    assert not (tmp_path / "ex").exists()
    # several tomograms in one file: this tomogram's rows are taken
    both = tmp_path / "both.star"
    write_star(str(both), StarTable({"rlnTomoName": ["other_tomo", "tomo", "tomo"],
                                     "rlnCoordinateX": [20, 21, 30], "rlnCoordinateY": [20, 21, 25],
                                     "rlnCoordinateZ": [20, 21, 20]}, "coordinates"))
    r = cli("extract", "--tomogram", tomo, "--coords", both, "--output", tmp_path / "ex", "--box", 8)
    assert r.returncode == 0, r.stderr
    table = read_star(str(tmp_path / "ex" / "particles.star"))
    assert table["rlnTomoName"] == ["tomo", "tomo"] and table["discaPickIndex"] == ["1", "2"]


def test_extract_output_under_a_file(tmp_path):
    tomo = tomogram(tmp_path / "tomo.mrc")
    c = coords(tmp_path / "c.star", [(20, 20, 20)])
    (tmp_path / "afile").write_text("x")
    one_line_error(cli("extract", "--tomogram", tomo, "--coords", c, "--output", tmp_path / "afile" / "ex",
                       "--box", 8), "is a file")
