"""Full disks, read-only mounts, failed --overwrite runs and lock races (issue 25): one line,
exit 2, found before loading where it can be, and never a half-written output or a lost
earlier one. The disks are real small tmpfs mounts (conftest.small_disk)."""
import os

import numpy as np
import pytest

from disca_engine.errors import EngineError
from disca_engine.io.mrc import write_volume
from disca_engine.io.star import read_star

from test_run_safety import (BOX, cli, coords, fake_tensorflow, finished_run, one_line_error,  # noqa: F401
                             particles, snapshot, tomogram)


def _grid(n, lo=6, hi=30):
    """``n`` pick positions whose 8-voxel boxes lie inside test_run_safety's tomogram."""
    rng = np.random.default_rng(1)
    return [tuple(int(v) for v in rng.integers(lo, hi, 3)) for _ in range(n)]


# ---------------------------------------------------------------- a failed --overwrite keeps the old output
@pytest.mark.parametrize("stack", [False, True])
def test_extract_overwrite_on_a_disk_that_fills_keeps_the_earlier_extraction(
        tmp_path, small_disk, cli_past_the_space_check, stack):
    tomo = tomogram(tmp_path / "tomo.mrc")
    out = small_disk("64k") / "ex"
    flags = ["--box", 8] + (["--stack"] if stack else [])
    first = coords(tmp_path / "c1.star", _grid(3))
    assert cli("extract", "--tomogram", tomo, "--coords", first, "--output", out, *flags).returncode == 0
    before = snapshot(out)
    many = coords(tmp_path / "c2.star", _grid(40))
    r = cli_past_the_space_check("extract", "--tomogram", tomo, "--coords", many, "--output", out,
                                 *flags, "--overwrite")
    one_line_error(r, str(out), "No space left on device", "free space")
    assert snapshot(out) == before  # the earlier boxes and their STAR, nothing of the new run


def test_predict_overwrite_with_a_bad_new_input_keeps_the_earlier_output(tmp_path, finished_run):
    pytest.importorskip("tensorflow")  # predict validates the voxels after --gpus is checked
    pred = tmp_path / "pred"
    for rel in ("clusters.star", "summary.json", "averages/class_001.mrc"):
        (pred / rel).parent.mkdir(parents=True, exist_ok=True)
        (pred / rel).write_text(f"earlier {rel}")
    before = snapshot(pred)
    star = particles(str(tmp_path / "data"))
    write_volume(str(tmp_path / "data" / "v004.mrc"), np.full((BOX,) * 3, np.nan, np.float32), 10.0)
    r = cli("predict", "--model", finished_run, "--input", star, "--output", pred, "--overwrite", env={})
    one_line_error(r, "row 5", "NaN")
    assert snapshot(pred) == before and not (pred / ".disca-new").exists()


# ---------------------------------------------------------------- found before loading (and before TensorFlow)
def test_a_cache_dir_that_is_a_file_or_read_only_is_found_before_tensorflow(
        tmp_path, finished_run, fake_tensorflow, small_disk):
    star = particles(str(tmp_path / "data"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    read_only = small_disk("64k", read_only=True)
    for args in (["cluster", "--input", star, "--output", tmp_path / "out", "--k-range", "2:2"],
                 ["predict", "--model", finished_run, "--input", star, "--output", tmp_path / "out"]):
        one_line_error(cli(*args, "--cache-dir", afile, env=fake_tensorflow), "--cache-dir", "is a file")
        one_line_error(cli(*args, "--cache-dir", read_only / "cache", env=fake_tensorflow),
                       "--cache-dir", "read-only file system")
        assert not (tmp_path / "out").exists() and afile.read_text() == "x"


def test_an_output_on_a_read_only_disk_is_found_first(tmp_path, finished_run, fake_tensorflow, small_disk):
    star = particles(str(tmp_path / "data"))
    tomo = tomogram(tmp_path / "tomo.mrc")
    read_only = small_disk("64k", read_only=True)
    for args in (["cluster", "--input", star, "--k-range", "2:2"],
                 ["predict", "--model", finished_run, "--input", star],
                 ["extract", "--tomogram", tomo, "--coords", coords(tmp_path / "c.star", _grid(2)), "--box", 8]):
        one_line_error(cli(*args, "--output", read_only / "out", env=fake_tensorflow),
                       "--output", "read-only file system")


def test_a_run_that_cannot_fit_on_its_disk_is_refused_before_loading(
        tmp_path, finished_run, fake_tensorflow, small_disk):
    star = particles(str(tmp_path / "data"))
    disk = small_disk("64k")
    line = one_line_error(cli("cluster", "--input", star, "--output", disk / "run", "--k-range", "2:2",
                              env=fake_tensorflow), "--output", "needs up to about", "are free", "checkpoints")
    assert "stack cache 12 x 13^3 x 4 bytes" in line
    one_line_error(cli("predict", "--model", finished_run, "--input", star, "--output", tmp_path / "pred",
                       "--cache-dir", disk / "cache", env=fake_tensorflow),
                   "--cache-dir", "stack cache 12 x 13^3 x 4 bytes", "are free")
    tomo = tomogram(tmp_path / "tomo.mrc")
    one_line_error(cli("extract", "--tomogram", tomo, "--coords", coords(tmp_path / "c.star", _grid(40)),
                       "--output", disk / "ex", "--box", 8), "40 boxes of 8^3", "are free")
    assert os.listdir(disk) == [] and not (tmp_path / "pred").exists()


# ---------------------------------------------------------------- the lock
def test_a_folder_made_by_a_run_refused_the_lock_is_not_left_behind(tmp_path):
    """Two runs start on a new folder: the one that made it loses the lock to one that found
    it there; when the winner fails early, the folder goes (it was new to both)."""
    from disca_engine.io.lock import FolderLock
    new = tmp_path / "new"
    refused = FolderLock(new, "cluster")
    refused.created = True  # it found no folder, made it and its lock file, then lost the lock
    os.close(refused._open())
    with pytest.raises(EngineError):
        with FolderLock(new, "predict"):
            raise EngineError("a bad input, found under the lock")
    assert not new.exists()


def test_a_run_in_an_existing_folder_leaves_that_folder(tmp_path):
    from disca_engine.io.lock import FolderLock
    with pytest.raises(EngineError):
        with FolderLock(tmp_path, "cluster"):
            raise EngineError("a bad input")
    assert tmp_path.is_dir()


def test_extract_holds_the_folder_lock(tmp_path):
    from test_run_safety import hold_lock
    tomo = tomogram(tmp_path / "tomo.mrc")
    out = tmp_path / "ex"
    out.mkdir()
    holder = hold_lock(out)
    try:
        one_line_error(cli("extract", "--tomogram", tomo, "--coords", coords(tmp_path / "c.star", _grid(2)),
                           "--output", out, "--box", 8), "in use by another run", f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(out) == [".disca-lock"]
    r = cli("extract", "--tomogram", tomo, "--coords", tmp_path / "c.star", "--output", out, "--box", 8)
    assert r.returncode == 0, r.stderr
    assert len(read_star(str(out / "particles.star"))) == 2 and not (out / ".disca-new").exists()


def test_resume_counts_the_space_its_folder_already_holds(tmp_path, fake_tensorflow, small_disk):
    """After a full disk the line says: free space, then --resume; the files the partial run
    holds are rewritten in place, so the check counts them as free."""
    star = particles(str(tmp_path / "data"))
    run = small_disk("5m") / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "held.bin").write_bytes(b"\0" * (4 << 20))  # as a partial run's
    one_line_error(cli("cluster", "--input", star, "--output", run, "--k-range", "2:2",
                       "--cache-dir", tmp_path / "cache", env=fake_tensorflow), "needs up to about")
    one_line_error(cli("cluster", "--input", star, "--output", run, "--k-range", "2:2", "--resume",
                       "--cache-dir", tmp_path / "cache", env=fake_tensorflow), "--resume", "fingerprint")
