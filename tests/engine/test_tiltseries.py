"""Tilt-series simulator: WBP, CTF/phase-flip convention, noise and dose per tilt, crowded
scenes, reproducibility, like-real mode, WBP tomograms, CLI and its errors."""
import json
import os

import numpy as np
import pytest

from disca_engine.cli import main as cli_main
from disca_engine.commands.simulate import TILTSERIES_DEFAULTS
from disca_engine.errors import EngineError
from disca_engine.io.star import read_star
from disca_engine.simulate import (generate_tiltseries_subtomograms, generate_tomogram, geometry,
                                   projection, template, tiltseries, tiltsubtomos)
from disca_engine.simulate.scene import distance_to_box

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL = os.path.join(ROOT, "tests", "data", "real", "empiar10499_ribosomes")
SMALL = dict(size=16, voxel_A=20.0, tilt_step=6.0, max_shift=1.0)   # fast settings


def _fourier_grid(n):
    k = np.fft.fftfreq(n) * n
    kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
    return kz, kx, np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)


def _run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    return exc.value.code


# ---------------------------------------------------------------- projection and WBP

def test_wbp_of_noiseless_projections_recovers_the_measured_region():
    n = 24
    vol = geometry.place(template("tric", 14.0), geometry.random_rotations(np.random.default_rng(1), 1)[0],
                         np.zeros(3), n)
    series = tiltseries.single_axis(tiltseries.tilt_angles(60, 3), 4.0)
    rec = projection.insert(projection.project(vol, series.rotations, (n, n)), series.rotations)
    a, b = np.fft.fftn(np.fft.ifftshift(rec)), np.fft.fftn(np.fft.ifftshift(vol))
    kz, kx, kr = _fourier_grid(n)
    angle = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))       # from the x-y plane
    measured = (angle <= 55) & (kr <= n / 2) & (kr > 0)
    cc = np.real((a[measured] * np.conj(b[measured])).sum()) / np.sqrt(
        (np.abs(a[measured]) ** 2).sum() * (np.abs(b[measured]) ** 2).sum())
    assert cc > 0.98                                              # measured: 0.994
    missing = (angle >= 70) & (kr <= n / 2) & (kr >= 3)
    assert (np.abs(a[missing]) ** 2).sum() < 0.35 * (np.abs(b[missing]) ** 2).sum()   # 0.25


def test_positive_tilt_measures_positive_kz_for_positive_kx():
    n = 16
    vol = np.zeros((n, n, n), np.float32)
    vol[8, 8, 8] = 1.0
    series = tiltseries.single_axis(np.array([30.0]), 4.0)
    spec = np.abs(np.fft.fftn(np.fft.ifftshift(projection.insert(
        projection.project(vol, series.rotations, (n, n)), series.rotations))))
    # the plane at +30 degrees holds (kx, kz) = (cos 30, sin 30) t: at kx = 4, kz = +2.3
    assert spec[2, 0, 4] > 3 * spec[-2, 0, 4]


def test_expected_noise_variance_of_the_reconstruction_matches():
    n = 16
    series = tiltseries.single_axis(tiltseries.tilt_angles(60, 6), 4.0)
    filt = tiltseries.correction_filters(series, n, 14.0)
    power = tiltseries.white_noise_power(series, n)
    rng = np.random.default_rng(0)
    got = [projection.insert(tiltseries.image_noise(rng, power), series.rotations, filt, power)
           for _ in range(30)]
    measured = np.mean([v.var() for v, _ in got])
    assert measured == pytest.approx(got[0][1], rel=0.03)


# ---------------------------------------------------------------- optics per tilt

def test_phase_flip_makes_every_band_positive_and_protein_bright():
    series = tiltseries.single_axis(np.array([0.0, 40.0]), 5.0)
    n, voxel = 32, 7.0          # at 7 A the second CTF lobe is inside the band
    phys = tiltseries.physics_filters(series, n, voxel)
    assert (phys < -1e-3).any() and (phys > 1e-3).any()           # raw CTF changes sign
    flipped = phys * tiltseries.correction_filters(series, n, voxel, "phaseflip", "bright")
    assert flipped.min() >= 0
    dark = phys * tiltseries.correction_filters(series, n, voxel, "phaseflip", "dark")
    assert dark.max() <= 0
    raw = phys * tiltseries.correction_filters(series, n, voxel, "none", "bright")
    assert raw[0, 0, 1] > 0 and (raw < -1e-3).any()               # first lobe bright only
    r = generate_tiltseries_subtomograms("tric", n_per_class=2, snr=1.0, neighbours=0,
                                         membrane_fraction=0, gold_fraction=0, return_clean=True,
                                         seed=3, **SMALL)
    centre = r["clean"][:, 6:10, 6:10, 6:10].mean(axis=(1, 2, 3))
    assert (centre > 0.3).all()                                   # tric's walls, bright


def test_noise_variance_grows_with_the_path_through_the_ice():
    series = tiltseries.single_axis(np.array([0.0, 60.0]), 4.0)
    np.testing.assert_allclose(series.path_factor, [1.0, 2.0], rtol=1e-9)
    noise = np.concatenate([tiltseries.image_noise(np.random.default_rng(s),
                                                   tiltseries.white_noise_power(series, 64))
                            for s in range(20)], axis=1)
    var = noise.var(axis=(1, 2))
    assert var[1] / var[0] == pytest.approx(2.0, rel=0.04)
    assert var[0] == pytest.approx(1.0, rel=0.04)


def test_dose_symmetric_order_and_damage_of_late_tilts():
    angles = tiltseries.tilt_angles(9, 3)                          # -9 .. 9
    order = tiltseries.dose_symmetric_order(angles)
    assert list(angles[order]) == [0, 3, 6, -3, -6, 9, -9]
    pre = tiltseries.pre_exposures(angles, 2.0)
    assert pre[list(angles).index(0)] == 0 and pre[list(angles).index(-9)] == 12.0
    k = np.array([1 / 100.0, 1 / 30.0])
    early, late = (tiltseries.exposure_filter(k, e, 2.0) for e in (0.0, 100.0))
    assert (late < early).all() and late[1] / early[1] < late[0] / early[0] < 1
    ne = 0.245 * 30.0 ** 1.665 + 2.81                      # Grant & Grigorieff at 30 A: 73 e/A^2
    assert late[1] == pytest.approx(np.exp(-101.0 / (2 * ne)), rel=1e-3)
    series = tiltseries.single_axis(tiltseries.tilt_angles(60, 3), 4.0)
    phys = np.abs(tiltseries.physics_filters(series, 24, 14.0))
    first, last = int(np.argmin(series.pre_exposure)), int(np.argmax(series.pre_exposure))
    assert phys[last, 0, 10] < 0.7 * phys[first, 0, 10]            # high frequency damped
    assert phys[last, 0, 1] > 0.9 * phys[first, 0, 1]              # low frequency kept


# ---------------------------------------------------------------- crowded boxes

def test_crowding_puts_the_asked_neighbours_in_the_boxes_and_membranes_in_a_fraction():
    r = generate_tiltseries_subtomograms("tric,ring", n_per_class=4, snr=0.1, neighbours=2,
                                         membrane_fraction=0.5, gold_fraction=0.25, seed=1, **SMALL)
    assert list(r["n_neighbours"]) == [2] * 8
    assert r["membrane"].sum() == 4 and r["gold"].sum() == 2
    temps = {c: template(c, 20.0) for c in r["neighbour_classes"]}
    names = r["class_names"] + [c for c in r["neighbour_classes"] if c not in r["class_names"]]
    for sc, has_membrane in zip(r["scenes"], r["membrane"]):
        for (i, _, c), role in zip(sc.bodies, sc.roles):
            d = distance_to_box(c[None], 16)[0]
            if role == "neighbour":
                assert d < temps[names[i]].r95                     # reaches the box
            elif role == "background":
                assert d >= temps[names[i]].r95
        assert (sc.membrane is not None) == has_membrane
        if has_membrane:                                           # it crosses the box
            ax = np.arange(16) - 8
            p = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
            dist = sc.membrane.distance(p)
            assert dist.min() < 0 < dist.max()
    lo_hi = generate_tiltseries_subtomograms("ring", n_per_class=6, neighbours=(0, 3), seed=2,
                                             membrane_fraction=0, **SMALL)["n_neighbours"]
    assert lo_hi.min() >= 0 and lo_hi.max() <= 3 and len(set(lo_hi)) > 1


def test_neighbour_pool_keeps_the_template_halves_apart():
    from disca_engine.simulate.templates import TEMPLATE_HALVES
    assert tiltsubtomos.neighbour_pool(["tric", "ring"]) == TEMPLATE_HALVES["tuning"]
    assert tiltsubtomos.neighbour_pool(["tric_ring"]) == TEMPLATE_HALVES["report"]
    assert len(tiltsubtomos.neighbour_pool(["tric", "tric_ring"])) == 28
    assert tiltsubtomos.neighbour_pool(["tric"], "ring,rod") == ["ring", "rod"]


def test_same_seed_same_boxes_and_snr_changes_only_the_noise_level():
    kw = dict(classes="ring,tric", n_per_class=2, neighbours=1, membrane_fraction=0.5,
              junk_fraction=0.2, return_clean=True, **SMALL)
    a = generate_tiltseries_subtomograms(snr=0.1, seed=4, **kw)
    b = generate_tiltseries_subtomograms(snr=0.1, seed=4, **kw)
    c = generate_tiltseries_subtomograms(snr=0.1, seed=5, **kw)
    d = generate_tiltseries_subtomograms(snr=0.5, seed=4, **kw)
    np.testing.assert_array_equal(a["data"], b["data"])
    assert not np.allclose(a["data"], c["data"])
    np.testing.assert_array_equal(a["labels"], d["labels"])
    np.testing.assert_allclose(a["signal_var"], d["signal_var"])
    real = a["labels"] != len(a["class_names"])
    np.testing.assert_allclose(a["signal_var"][real] / a["noise_var"][real], 0.1)
    assert (~real).sum() == 1 and a["noise_var"][~real][0] == pytest.approx(np.median(a["noise_var"][real]))
    # higher SNR: the boxes are closer to their noise-free version
    err = lambda r: np.mean((r["data"] - r["clean"] / r["clean"].std(axis=(1, 2, 3), keepdims=True)) ** 2)  # noqa: E731
    assert err(d) < err(a)
    ds = generate_tiltseries_subtomograms(snr=0.1, seed=4, snr_mode="dataset", **kw)
    assert np.ptp(ds["noise_var"]) == 0


# ---------------------------------------------------------------- like the real data

@pytest.mark.skipif(not os.path.isdir(REAL), reason="real test data not in this checkout")
def test_reconstruction_of_the_real_tilt_series_matches_the_shipped_boxes():
    from disca_engine.simulate import likereal
    real = likereal.RealSet(REAL)
    assert (real.voxel_a, real.size, len(real)) == (12.0, 32, 40)
    for i in (0, 17, 39):
        mine, shipped = likereal.reconstruct_real(real, i), real.boxes()[i]
        assert np.corrcoef(mine.ravel(), shipped.ravel())[0, 1] > 0.97      # measured 0.98-0.99


@pytest.mark.skipif(not os.path.isdir(REAL), reason="real test data not in this checkout")
def test_like_real_boxes_share_the_real_spectrum_and_contrast():
    from disca_engine.simulate import likereal
    r = likereal.generate_like_real(REAL, "ribo60s", n_per_class=6, seed=0, return_clean=True)
    assert r["data"].shape == (6, 32, 32, 32) and r["voxel_A"] == 12.0
    real = likereal.RealSet(REAL)
    shell = likereal.shell_index(32)
    ratio = likereal.shell_power(r["data"], shell)[1:16] / likereal.shell_power(real.boxes(), shell)[1:16]
    assert np.all(np.abs(ratio[:2] - 1) < 0.25)      # shells 1-2: few voxels, 6 boxes
    assert np.all(np.abs(ratio[2:] - 1) < 0.05)
    t = template("ribo60s", 12.0)
    for clean, rot, shift in zip(r["clean"], r["rotations"], r["shifts"]):
        density = geometry.place(t, rot, shift, 32)                # the box frame
        mirrored = np.roll(density[::-1], 1, axis=0)
        cc = np.corrcoef(clean.ravel(), density.ravel())[0, 1]
        assert cc > 0.5                                            # protein bright (0.79-0.83)
        assert cc > np.corrcoef(clean.ravel(), mirrored.ravel())[0, 1] + 0.05   # its own hand
    with pytest.raises(EngineError, match="optimisation_set"):
        likereal.RealSet(ROOT)
    with pytest.raises(EngineError, match="--snr 0.3: give an SNR > 0 and <= 0.1"):
        likereal.generate_like_real(REAL, "tric", n_per_class=1, snr=0.3)


# ---------------------------------------------------------------- WBP tomograms

def test_wbp_tomogram_matches_the_fourier_one_and_sets_the_snr():
    kw = dict(shape=(32, 64, 64), n_particles=3, classes="tric,ring,shell", seed=0, snr=0.2,
              distractors=False, return_clean=True, tilt=60)
    w = generate_tomogram(reconstruction="wbp", tilt_step=4.0, **kw)
    f = generate_tomogram(**kw)
    assert w["volume"].shape == (32, 64, 64) and abs(w["volume"].std() - 1) < 1e-4
    assert np.corrcoef(w["clean"].ravel(), f["clean"].ravel())[0, 1] > 0.8    # same sign too
    assert w["signal_var"] / w["noise_var"] == pytest.approx(0.2)
    with pytest.raises(EngineError, match="--reconstruction"):
        generate_tomogram(reconstruction="sirt", **kw)


# ---------------------------------------------------------------- files and CLI

def test_cli_writes_boxes_with_truth_columns(tmp_path):
    out = str(tmp_path / "ts")
    assert _run_cli(["simulate", "tiltseries", out, "--classes", "ring", "--n-per-class", "3",
                     "--size", "16", "--voxel-A", "20", "--tilt-step", "6", "--neighbours", "1",
                     "--membrane-fraction", "0.34", "--junk-fraction", "0.25", "--stack"]) == 0
    t = read_star(os.path.join(out, "particles.star"))
    assert len(t) == 4 and t["rlnImageName"][0] == "1@particles.mrcs"
    assert set(t["discaTrueClassName"]) == {"ring", "junk"}
    assert t["discaTrueNeighbours"] == ["1"] * 4
    assert sum(int(m) for m in t["discaTrueMembrane"]) >= 1
    assert all(2.5 <= float(d) <= 5 for d in t["discaTrueDefocusUm"])
    info = json.load(open(os.path.join(out, "simulation.json")))
    assert len(info["particles"]) == 4 and len(info["particles"][0]["neighbours"]) == 1


@pytest.mark.parametrize("argv, message", [
    (["--neighbours", "1,x"], "--neighbours 1,x: give one number or two"),
    (["--neighbours", "3,1"], "--neighbours 3,1: give one value or a range"),
    (["--defocus-um", "0,2"], "--defocus-um 0,2: the underfocus must be > 0"),
    (["--membrane-fraction", "1.5"], "--membrane-fraction 1.5: give a fraction"),
    (["--tilt", "85"], "--tilt 85: give the largest tilt"),
    (["--tilt-step", "0"], "--tilt-step 0: give the angle between images"),
    (["--dose-per-tilt", "-1"], "--dose-per-tilt -1: give the exposure"),
    (["--snr", "0"], "--snr 0.0: the signal-to-noise ratio must be > 0"),
    (["--neighbours", "60"], "cannot fit 60 neighbours"),
])
def test_cli_bad_arguments_one_line_and_nothing_written(tmp_path, capsys, argv, message):
    out = tmp_path / "bad"
    assert _run_cli(["simulate", "tiltseries", str(out), "--classes", "ring", "--n-per-class", "1",
                     "--size", "16", "--voxel-A", "20"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_cli_defaults_are_the_api_defaults():
    from disca_engine.simulate import likereal
    assert TILTSERIES_DEFAULTS == {
        "snr": tiltsubtomos.SNR, "tilt_step": tiltseries.TILT_STEP,
        "dose_per_tilt": tiltseries.DOSE_PER_TILT,
        "defocus_um": ",".join(f"{d:g}" for d in tiltsubtomos.DEFOCUS_UM),
        "neighbours": ",".join(str(k) for k in tiltsubtomos.NEIGHBOURS),
        "membrane_fraction": tiltsubtomos.MEMBRANE_FRACTION,
        "gold_fraction": tiltsubtomos.GOLD_FRACTION}
    from disca_engine.cli import build_parser
    args = build_parser().parse_args(["simulate", "like-real", "x", "--real", "y"])
    assert (args.snr, args.max_shift) == (likereal.SNR, likereal.MAX_SHIFT)


@pytest.mark.skipif(not os.path.isdir(REAL), reason="real test data not in this checkout")
def test_cli_like_real_writes_boxes_and_refuses_a_folder_without_a_set(tmp_path, capsys):
    out = tmp_path / "lr"
    assert _run_cli(["simulate", "like-real", str(out), "--real", REAL, "--classes", "tric",
                     "--n-per-class", "2", "--seed", "3"]) == 0
    t = read_star(str(out / "particles.star"))
    assert len(t) == 2 and t["discaTrueClassName"] == ["tric", "tric"]
    info = json.load(open(out / "simulation.json"))
    assert info["parameters"]["voxel_A"] == 12.0 and len(info["parameters"]["source_particle"]) == 2
    bad = tmp_path / "bad"
    assert _run_cli(["simulate", "like-real", str(bad), "--real", str(tmp_path), "--classes", "tric"]) == 2
    assert "no source/*_optimisation_set.star" in capsys.readouterr().err
    assert not bad.exists()
