import os

import numpy as np
import pytest

from disca_engine.clustering.dataset import ParticleSet, load_particles
from disca_engine.errors import EngineError
from disca_engine.io.mrc import write_volume
from disca_engine.io.star import StarTable, write_star


def volume(seed, s=8, scale=3.0, offset=5.0):
    return (np.random.default_rng(seed).normal(size=(s, s, s)) * scale + offset).astype(np.float32)


def make_set(folder, n=4, s=8, names=None, voxel_size=14.0):
    """Single-volume MRCs in folder/sub/, STAR with relative paths."""
    os.makedirs(folder / "sub", exist_ok=True)
    rows = []
    for i in range(n):
        write_volume(str(folder / "sub" / f"p{i}.mrc"), volume(i, s), voxel_size=voxel_size)
        rows.append(f"sub/p{i}.mrc")
    star = folder / "particles.star"
    write_star(str(star), StarTable({"rlnImageName": names or rows, "rlnTomoName": ["t"] * n}, "particles"))
    return star


def test_loads_normalises_and_keeps_table(tmp_path):
    star = make_set(tmp_path, n=5)
    ps = load_particles(str(star), progress=False)
    assert isinstance(ps, ParticleSet)
    assert ps.n == 5 and ps.box == 8 and len(ps) == 5
    assert ps.volumes.dtype == np.float32 and ps.volumes.shape == (5, 8, 8, 8)
    np.testing.assert_allclose(ps.volumes.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(ps.volumes.std(axis=(1, 2, 3)), 1, atol=1e-5)
    raw = volume(2)
    np.testing.assert_allclose(ps.volumes[2], (raw - raw.mean()) / raw.std(), atol=1e-5)
    assert ps.voxel_size == pytest.approx(14.0)
    assert ps.table["rlnTomoName"] == ["t"] * 5
    assert ps.star_path == str(star)


def test_iter_batches_returns_copies_in_requested_order(tmp_path):
    ps = load_particles(str(make_set(tmp_path, n=5)), progress=False)
    batches = list(ps.iter_batches([4, 0, 3, 1, 2], 2))
    assert [b.shape[0] for b in batches] == [2, 2, 1]
    got = np.concatenate(batches)
    np.testing.assert_array_equal(got, ps.volumes[[4, 0, 3, 1, 2]])
    got[0] += 1
    assert not np.array_equal(got[0], ps.volumes[4])
    assert sum(len(b) for b in ps.iter_batches(batch_size=3)) == 5


def test_stack_references_and_absolute_paths(tmp_path):
    stack = np.stack([volume(i) for i in range(3)])
    write_volume(str(tmp_path / "stack.mrcs"), stack, voxel_size=7.0)
    write_volume(str(tmp_path / "single.mrc"), volume(9), voxel_size=7.0)
    names = ["2@stack.mrcs", "1@stack.mrcs", str(tmp_path / "single.mrc"), "3@stack.mrcs"]
    write_star(str(tmp_path / "p.star"), StarTable({"rlnImageName": names}, "particles"))
    ps = load_particles(str(tmp_path / "p.star"), progress=False)
    for row, raw in enumerate([stack[1], stack[0], volume(9), stack[2]]):
        np.testing.assert_allclose(ps.volumes[row], (raw - raw.mean()) / raw.std(), atol=1e-5)
    assert ps.voxel_size == pytest.approx(7.0)


def test_relion31_optics_block_first(tmp_path):
    make_set(tmp_path, n=2)
    text = ("data_optics\nloop_\n_rlnOpticsGroup #1\n1\n\n"
            "data_particles\nloop_\n_rlnImageName #1\nsub/p0.mrc\nsub/p1.mrc\n")
    (tmp_path / "r31.star").write_text(text)
    assert load_particles(str(tmp_path / "r31.star"), progress=False).n == 2


def test_memmap_cache_written_once_and_reused(tmp_path, capsys, monkeypatch):
    from disca_engine.clustering import dataset
    star = make_set(tmp_path, n=4)
    cache = tmp_path / "cache"
    first = load_particles(str(star), cache_dir=str(cache), progress=False)
    assert isinstance(first.volumes, np.memmap) and not first.volumes.flags.writeable
    assert os.path.getsize(cache / "stack.f32") == 4 * 8 ** 3 * 4
    assert (cache / "stack.json").exists() and first.cache_path == str(cache / "stack.f32")
    ram = load_particles(str(star), progress=False)
    np.testing.assert_array_equal(np.asarray(first.volumes), ram.volumes)
    # the second load must not read the MRC files' voxels
    with monkeypatch.context() as m:
        m.setattr(dataset.mrc_io, "read_volume", lambda *a, **k: pytest.fail("voxels read again"))
        again = load_particles(str(star), cache_dir=str(cache), progress=True)
    assert "reusing" in capsys.readouterr().out
    np.testing.assert_array_equal(np.asarray(again.volumes), ram.volumes)
    assert again.voxel_size == pytest.approx(14.0)
    # a box rewritten behind an unchanged STAR file: its new voxels are loaded
    write_volume(str(tmp_path / "sub" / "p1.mrc"), volume(99), voxel_size=14.0)
    changed = load_particles(str(star), cache_dir=str(cache), progress=True)
    assert "reusing" not in capsys.readouterr().out
    new = volume(99)
    np.testing.assert_allclose(np.asarray(changed.volumes[1]), (new - new.mean()) / new.std(), atol=1e-5)
    # a changed STAR file invalidates the cache too
    star.write_text(star.read_text() + "\n")
    load_particles(str(star), cache_dir=str(cache), progress=True)
    assert "reusing" not in capsys.readouterr().out
    # a box gone: reported by the loading, and no half-written cache is left
    (tmp_path / "sub" / "p2.mrc").unlink()
    with pytest.raises(EngineError, match="row 3: image .* not found"):
        load_particles(str(star), cache_dir=str(cache), progress=False)
    assert not (cache / "stack.json").exists() and not (cache / "stack.f32.partial").exists()


def test_missing_file_names_row_and_path(tmp_path):
    star = make_set(tmp_path, n=3, names=["sub/p0.mrc", "sub/nope.mrc", "sub/p2.mrc"])
    with pytest.raises(EngineError, match=r"row 2: image sub/nope.mrc not found; tried .*sub/nope.mrc"):
        load_particles(str(star), progress=False)


def test_unreadable_file(tmp_path):
    star = make_set(tmp_path, n=2)
    (tmp_path / "sub" / "p1.mrc").write_bytes(b"not an mrc file at all" * 10)
    with pytest.raises(EngineError, match=r"row 2 .*p1.mrc"):
        load_particles(str(star), progress=False)


def test_stack_index_out_of_range(tmp_path):
    write_volume(str(tmp_path / "stack.mrcs"), np.stack([volume(0), volume(1)]))
    write_star(str(tmp_path / "p.star"), StarTable({"rlnImageName": ["1@stack.mrcs", "5@stack.mrcs"]}))
    with pytest.raises(EngineError, match=r"row 2 .*only 2 volumes"):
        load_particles(str(tmp_path / "p.star"), progress=False)


def test_non_cubic(tmp_path):
    star = make_set(tmp_path, n=2)
    write_volume(str(tmp_path / "sub" / "p1.mrc"), np.random.default_rng(0).normal(size=(6, 8, 8)))
    with pytest.raises(EngineError, match=r"row 2 .*8x8x6 is not cubic"):
        load_particles(str(star), progress=False)


def test_mixed_sizes_lists_sizes_and_first_offending_row(tmp_path):
    star = make_set(tmp_path, n=4)
    write_volume(str(tmp_path / "sub" / "p2.mrc"), volume(0, s=10))
    write_volume(str(tmp_path / "sub" / "p3.mrc"), volume(0, s=10))
    with pytest.raises(EngineError, match=r"mixed box sizes \(8\^3 x2, 10\^3 x2\): row 1 is 8\^3 but row 3"):
        load_particles(str(star), progress=False)


def test_box_too_small(tmp_path):
    star = make_set(tmp_path, n=2, s=8)
    with pytest.raises(EngineError, match="boxes under 21 voxels cannot pass the network's valid 3x3x3 "
                                          "convolutions: re-extract with a larger --box"):
        load_particles(str(star), min_box=21, progress=False)


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_nan_volume_names_file(tmp_path):
    star = make_set(tmp_path, n=3)
    bad = volume(1)
    bad[1, 2, 3] = np.nan
    write_volume(str(tmp_path / "sub" / "p1.mrc"), bad)
    with pytest.raises(EngineError, match=r"row 2 .*p1.mrc has 1 NaN/Inf voxels"):
        load_particles(str(star), progress=False)


def test_complex_volume_refused_not_truncated(tmp_path):
    import mrcfile
    star = make_set(tmp_path, n=3)
    with mrcfile.new(str(tmp_path / "sub" / "p1.mrc"), overwrite=True) as mrc:
        mrc.set_data((volume(1) + 1j * volume(2)).astype(np.complex64))  # mode 4
    with pytest.raises(EngineError, match=r"row 2 .*p1.mrc: complex-valued MRC data"):
        load_particles(str(star), progress=False)


def test_folders_with_quotes_and_spaces_round_trip(tmp_path):
    """Paths as users name folders: an apostrophe, spaces, both quotes, a leading underscore."""
    names = []
    for i, folder in enumerate(["it's", "my data", 'say "hi"', "_x", "data_y"]):
        os.makedirs(tmp_path / folder)
        write_volume(str(tmp_path / folder / f"p{i}.mrc"), volume(i), voxel_size=14.0)
        names.append(f"{folder}/p{i}.mrc")
    star = make_set(tmp_path, n=5, names=names)
    from disca_engine.io.star import read_star
    assert read_star(str(star))["rlnImageName"] == names
    ps = load_particles(str(star), progress=False)
    np.testing.assert_allclose(ps.volumes[0], (volume(0) - volume(0).mean()) / volume(0).std(), atol=1e-5)


def test_star_rows_as_relion_and_scipion_write_them(tmp_path):
    from disca_engine.io.star import read_star
    (tmp_path / "r.star").write_text(
        "data_particles\nloop_\n_rlnImageName #1\n_rlnTomoName #2\n_rlnMicrographName #3\n"
        "it's/a.mrc \"tomo 1\" ''\n'b c.mrc' t2 \"\"\n")
    t = read_star(str(tmp_path / "r.star"))
    assert t["rlnImageName"] == ["it's/a.mrc", "b c.mrc"]
    assert t["rlnTomoName"] == ["tomo 1", "t2"] and t["rlnMicrographName"] == ["", ""]
    (tmp_path / "bad.star").write_text("data_particles\nloop_\n_rlnImageName #1\n'open.mrc\n")
    with pytest.raises(EngineError, match="malformed STAR row"):
        read_star(str(tmp_path / "bad.star"))


def test_a_value_no_quote_can_hold_is_refused(tmp_path):
    with pytest.raises(EngineError, match="cannot be written to a STAR file .*rename"):
        write_star(str(tmp_path / "x.star"), StarTable({"rlnImageName": ["a' b\" c"]}))
    assert not (tmp_path / "x.star").exists()


def test_constant_volume(tmp_path):
    star = make_set(tmp_path, n=3)
    write_volume(str(tmp_path / "sub" / "p2.mrc"), np.full((8, 8, 8), 3.0))
    with pytest.raises(EngineError, match=r"row 3 .*constant \(zero variance\)"):
        load_particles(str(star), progress=False)


def test_too_few_particles(tmp_path):
    star = make_set(tmp_path, n=3)
    with pytest.raises(EngineError, match="has 3 particles but at least 10 are needed"):
        load_particles(str(star), min_particles=10, progress=False)


def test_malformed_star_and_missing_column(tmp_path):
    (tmp_path / "bad.star").write_text("data_particles\nloop_\n_rlnImageName #1\n_rlnTomoName #2\na.mrc\n")
    with pytest.raises(EngineError, match="malformed STAR"):
        load_particles(str(tmp_path / "bad.star"), progress=False)
    write_star(str(tmp_path / "nocol.star"), StarTable({"rlnTomoName": ["a"]}))
    with pytest.raises(EngineError, match="_rlnImageName is missing"):
        load_particles(str(tmp_path / "nocol.star"), progress=False)
    with pytest.raises(EngineError, match="not found"):
        load_particles(str(tmp_path / "absent.star"), progress=False)


def test_progress_lines_for_large_sets(tmp_path, capsys, monkeypatch):
    from disca_engine.clustering import dataset
    monkeypatch.setattr(dataset, "_PROGRESS_MIN", 3)
    star = make_set(tmp_path, n=4)
    load_particles(str(star), progress=True)
    out = capsys.readouterr().out
    assert "[load] 4/4 (100%)" in out and "[load] finished" in out and "4 subtomograms of 8^3" in out
    load_particles(str(star), progress=False)
    assert capsys.readouterr().out == ""
