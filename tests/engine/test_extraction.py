"""Subtomogram extraction: centring convention, normalisation, border skips, binning, errors."""
import json
import os

import mrcfile
import numpy as np
import pytest

from disca_engine.errors import EngineError
from disca_engine.extraction import box_starts, extract_boxes, extract_file
from disca_engine.io.mrc import read_volume, write_volume
from disca_engine.io.star import StarTable, read_star, write_star
from disca_engine.picking import pick_file

VOX = 10.0


def dark_blob_volume(shape, centres, sigma=2.0, noise=0.2, seed=0):
    rng = np.random.default_rng(seed)
    v = (noise * rng.normal(size=shape)).astype(np.float32)
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    for x, y, z in centres:
        v -= 3.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) / (2 * sigma ** 2))
    return v


def coords_star(path, xyz, names=None, fom=None):
    t = StarTable(name="coordinates")
    t["rlnTomoName"] = names or ["tomo"] * len(xyz)
    for k, a in enumerate("XYZ"):
        t[f"rlnCoordinate{a}"] = [p[k] for p in xyz]
    if fom is not None:
        t["rlnAutopickFigureOfMerit"] = fom
    write_star(str(path), t)
    return str(path)


@pytest.mark.parametrize("box", [9, 10])
def test_round_trip_pick_then_extract_is_centred_on_the_blob(tmp_path, box):
    centre = (21, 17, 14)  # x, y, z
    v = dark_blob_volume((30, 36, 40), [centre])
    write_volume(str(tmp_path / "tomo.mrc"), v, VOX)
    pick_file(str(tmp_path / "tomo.mrc"), str(tmp_path / "c.star"), 60.0, max_picks=1, quiet=True)
    s = extract_file(str(tmp_path / "tomo.mrc"), str(tmp_path / "c.star"), box, str(tmp_path / "out"),
                     quiet=True)
    assert s.n_extracted == 1
    t = read_star(s.particles_star)
    sub = read_volume(os.path.join(tmp_path / "out", t["rlnImageName"][0]))
    assert sub.shape == (box,) * 3
    assert np.unravel_index(np.argmin(sub), sub.shape) == (box // 2,) * 3
    x, y, z = centre
    raw = v[z - box // 2:z - box // 2 + box, y - box // 2:y - box // 2 + box, x - box // 2:x - box // 2 + box]
    assert np.allclose(sub, (raw - raw.mean()) / raw.std(), atol=1e-4)


def test_boxes_are_normalised_and_border_crossing_boxes_skipped(tmp_path):
    v = dark_blob_volume((30, 36, 40), [(20, 18, 15)]) * 5 + 7
    write_volume(str(tmp_path / "tomo.mrc"), v, VOX)
    xyz = [(20, 18, 15), (3, 18, 15), (20, 18, 27), (36, 30, 22), (4, 4, 4)]
    cs = coords_star(tmp_path / "c.star", xyz, fom=[5, 4, 3, 2, 1])
    s = extract_file(str(tmp_path / "tomo.mrc"), cs, 8, str(tmp_path / "out"), quiet=True)
    # box 8: start = c - 4, end = c + 4 (exclusive). x=3 -> start -1 (skip); z=27 -> end 31 > 30
    # (skip); x=36 -> end 40 = nx (kept); (4, 4, 4) -> start 0 (kept)
    assert (s.n_extracted, s.n_skipped) == (3, 2)
    t = read_star(s.particles_star)
    assert list(t["discaPickIndex"]) == ["0", "3", "4"]
    assert t.column("rlnAutopickFigureOfMerit", float).tolist() == [5, 2, 1]
    assert t["discaTomogramFile"][0] == str(tmp_path / "tomo.mrc")
    for name in t["rlnImageName"]:
        assert not os.path.isabs(name)
        b = read_volume(os.path.join(tmp_path / "out", name))
        assert abs(float(b.mean())) < 1e-5 and abs(float(b.std()) - 1) < 1e-4
        assert b.dtype == np.float32
    info = json.loads((tmp_path / "out" / "extraction.json").read_text())
    assert info["n_extracted"] == 3 and info["n_skipped"] == 2 and info["box"] == 8


@pytest.mark.parametrize("pad", ["noise", "mean"])
def test_border_boxes_padded_and_flagged(tmp_path, pad):
    v = dark_blob_volume((30, 36, 40), [(20, 18, 15)]) * 5 + 7
    write_volume(str(tmp_path / "tomo.mrc"), v, VOX)
    # rows 1 and 2 cross the border with their pick inside; row 3's pick is outside: skipped
    xyz = [(20, 18, 15), (3, 18, 15), (20, 18, 27), (45, 18, 15)]
    cs = coords_star(tmp_path / "c.star", xyz)
    s = extract_file(str(tmp_path / "tomo.mrc"), cs, 8, str(tmp_path / pad), quiet=True, pad=pad,
                     stack=(pad == "mean"))
    assert (s.n_extracted, s.n_skipped, s.n_padded, s.pad) == (3, 1, 2, pad)
    t = read_star(s.particles_star)
    assert list(t["discaPickIndex"]) == ["0", "1", "2"]
    filled = t.column("discaPaddedFraction", float)
    # x = 3: start -1, one of 8 planes missing; z = 27: end 31 > 30, one plane missing
    assert filled[0] == 0 and np.allclose(filled[1:], 1 / 8)
    b = read_volume(os.path.join(tmp_path / pad, t["rlnImageName"][1]))
    assert b.shape == (8, 8, 8) and abs(float(b.mean())) < 1e-5 and abs(float(b.std()) - 1) < 1e-4
    # the inside part is the tomogram's (up to the box's normalisation)
    raw = v[11:19, 14:22, 0:7]
    inner = b[:, :, 1:]
    assert np.corrcoef(inner.ravel(), raw.ravel())[0, 1] > 0.999
    if pad == "mean":  # the filled plane is constant
        assert float(b[:, :, 0].std()) < 1e-5
    else:
        assert float(b[:, :, 0].std()) > 0.1
    with pytest.raises(EngineError, match="pad must be"):
        extract_file(str(tmp_path / "tomo.mrc"), cs, 8, str(tmp_path / "x"), quiet=True, pad="zero")


def test_binned_extraction_voxel_size_and_centre(tmp_path):
    centre = (20.5, 18.5, 16.5)  # binned voxel centre for bin 2
    v = dark_blob_volume((40, 40, 48), [centre], sigma=3.0)
    write_volume(str(tmp_path / "tomo.mrc"), v, VOX)
    cs = coords_star(tmp_path / "c.star", [centre])
    s = extract_file(str(tmp_path / "tomo.mrc"), cs, 8, str(tmp_path / "out"), bin=2, quiet=True)
    assert s.n_extracted == 1 and s.voxel_A == pytest.approx(20.0)
    path = os.path.join(tmp_path / "out", read_star(s.particles_star)["rlnImageName"][0])
    with mrcfile.open(path) as m:
        assert m.voxel_size.x == pytest.approx(20.0) and m.data.shape == (8, 8, 8)
        assert np.unravel_index(np.argmin(m.data), m.data.shape) == (4, 4, 4)
    assert np.array_equal(box_starts([centre], 8, 2), [[16 - 8, 18 - 8, 20 - 8]])


def test_extract_boxes_in_memory_and_kept_mask():
    v = dark_blob_volume((20, 20, 20), [(10, 10, 10)])
    boxes, kept = extract_boxes(v, [(10, 10, 10), (1, 10, 10), (15, 15, 15)], 8)
    assert kept.tolist() == [True, False, True] and boxes.shape == (2, 8, 8, 8)
    with pytest.raises(EngineError, match="larger than the tomogram"):
        extract_boxes(v, [(10, 10, 10)], 21)


def test_selects_rows_of_the_named_tomogram(tmp_path):
    v = dark_blob_volume((30, 30, 30), [(15, 15, 15)])
    write_volume(str(tmp_path / "tomoB.mrc"), v, VOX)
    cs = coords_star(tmp_path / "c.star", [(15, 15, 15), (14, 14, 14), (16, 15, 15)],
                     names=["tomoA", "tomoB", "tomoB"])
    s = extract_file(str(tmp_path / "tomoB.mrc"), cs, 8, str(tmp_path / "out"), tomo_name="tomoB", quiet=True)
    t = read_star(s.particles_star)
    assert s.n_extracted == 2 and list(t["discaPickIndex"]) == ["1", "2"] and set(t["rlnTomoName"]) == {"tomoB"}
    with pytest.raises(EngineError, match="--tomo-name"):
        extract_file(str(tmp_path / "tomoB.mrc"), cs, 8, str(tmp_path / "o2"), quiet=True)
    with pytest.raises(EngineError, match="no coordinates for tomogram 'tomoC'"):
        extract_file(str(tmp_path / "tomoB.mrc"), cs, 8, str(tmp_path / "o3"), tomo_name="tomoC", quiet=True)


def test_cli_extract_reports_counts_and_defaults_to_the_tomogram_name(tmp_path, capsys):
    from disca_engine.cli import main
    v = dark_blob_volume((30, 30, 30), [(15, 15, 15)])
    write_volume(str(tmp_path / "tomoB.mrc"), v, VOX)
    cs = coords_star(tmp_path / "c.star", [(15, 15, 15), (1, 14, 14), (16, 15, 15)],
                     names=["tomoA", "tomoB", "tomoB"])
    with pytest.raises(SystemExit) as e:
        main(["extract", "--tomogram", str(tmp_path / "tomoB.mrc"), "--coords", cs, "--box", "8",
              "--output", str(tmp_path / "out")])
    assert e.value.code == 0
    assert "extracted 1, skipped 1 (outside/crossing border)" in capsys.readouterr().out


def test_extraction_errors(tmp_path):
    v = dark_blob_volume((20, 20, 20), [(10, 10, 10)])
    write_volume(str(tmp_path / "tomo.mrc"), v, VOX)
    cs = coords_star(tmp_path / "c.star", [(10, 10, 10)])
    with pytest.raises(EngineError, match="larger than the tomogram"):
        extract_file(str(tmp_path / "tomo.mrc"), cs, 24, str(tmp_path / "out"), quiet=True)
    empty = coords_star(tmp_path / "empty.star", [])
    with pytest.raises(EngineError, match="no coordinates"):
        extract_file(str(tmp_path / "tomo.mrc"), empty, 8, str(tmp_path / "out"), quiet=True)
    v[2, 3, 4] = np.nan
    with pytest.warns(RuntimeWarning):  # mrcfile warns when writing NaNs
        write_volume(str(tmp_path / "nan.mrc"), v, VOX)
    with pytest.raises(EngineError, match=r"nan\.mrc has NaN"):
        extract_file(str(tmp_path / "nan.mrc"), cs, 8, str(tmp_path / "out"), quiet=True)
    assert not (tmp_path / "out" / "particles.star").exists()


def test_stack_output_matches_single_files(tmp_path):
    from disca_engine.io.mrc import read_image
    v = dark_blob_volume((30, 36, 40), [(20, 18, 15)]) * 3 + 1
    write_volume(str(tmp_path / "tomo.mrc"), v, VOX)
    cs = coords_star(tmp_path / "c.star", [(20, 18, 15), (3, 18, 15), (12, 20, 10)], fom=[3, 2, 1])
    files = extract_file(str(tmp_path / "tomo.mrc"), cs, 8, str(tmp_path / "f"), quiet=True)
    stack = extract_file(str(tmp_path / "tomo.mrc"), cs, 8, str(tmp_path / "s"), bin=1, stack=True, quiet=True)
    tf, ts = read_star(files.particles_star), read_star(stack.particles_star)
    assert (stack.n_extracted, stack.n_skipped) == (2, 1)
    assert list(ts["rlnImageName"]) == ["1@subtomos/tomo.mrcs", "2@subtomos/tomo.mrcs"]
    assert list(ts["discaPickIndex"]) == list(tf["discaPickIndex"]) == ["0", "2"]
    for a, b in zip(tf["rlnImageName"], ts["rlnImageName"]):
        assert np.array_equal(read_image(a, str(tmp_path / "f")), read_image(b, str(tmp_path / "s")))
    with mrcfile.open(str(tmp_path / "s" / "subtomos" / "tomo.mrcs")) as m:
        assert m.is_volume_stack() and m.voxel_size.x == pytest.approx(VOX)
