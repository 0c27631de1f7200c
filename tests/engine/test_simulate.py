"""Simulator: reproducibility, physics (wedge, CTF sign, SNR), ground truth, CLI, errors."""
import gzip
import json
import os

import numpy as np
import pytest
from scipy import ndimage

from disca_engine.cli import main as cli_main
from disca_engine.errors import EngineError
from disca_engine.io.mrc import read_image, read_volume, voxel_size
from disca_engine.io.star import read_star
from disca_engine.simulate import (CLASS_SETS, CLASSES, generate_subtomograms, generate_tomogram,
                                   resolve_classes, simulate_subtomograms, simulate_tomograms,
                                   template)
from disca_engine.simulate import atoms as bt
from disca_engine.simulate import geometry, optics, phantoms
from disca_engine.simulate.templates import REFERENCE_VOXEL_A, reference_map

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    return exc.value.code


# ---------------------------------------------------------------- templates

def test_class_sets_resolve_and_all_templates_fit_default_box():
    assert resolve_classes(5) == CLASS_SETS["default"]
    assert resolve_classes("tric,ring") == ["tric", "ring"]
    assert len(CLASSES) >= 8
    for name in CLASSES:
        t = template(name, 14.0)
        assert t.vol.dtype == np.float32 and t.vol.max() > 0.05
        # the default 24^3 box with +-2 voxel shifts holds 95% of every class
        assert t.r95 + 2.0 <= 11.5, name
    # 'similar' really is similar in size, 'different' really spans sizes
    sim = [template(n, 14.0).r95 for n in CLASS_SETS["similar"]]
    dif = [template(n, 14.0).r95 for n in CLASS_SETS["different"]]
    assert max(sim) / min(sim) < 1.6
    assert max(dif) / min(dif) > 2.5


@pytest.mark.parametrize("name", sorted(phantoms.PHANTOMS))
def test_stored_phantom_matches_code(name):
    # the committed maps are what scripts/build_templates.py makes from the current code
    stored = reference_map(name)
    fresh = phantoms.render(name, REFERENCE_VOXEL_A)
    assert stored.shape == fresh.shape
    np.testing.assert_allclose(stored, fresh, atol=1e-5)


def test_resample_keeps_centre_and_contrast_units():
    t7, t14 = template("tric", 7.0), template("tric", 14.0)
    np.testing.assert_allclose(t14.com, np.array(t14.vol.shape) // 2, atol=0.3)
    # contrast per voxel is intensive: the integral scales with the voxel volume
    ratio = (t14.vol.sum() * 14.0 ** 3) / (t7.vol.sum() * 7.0 ** 3)
    assert 0.9 < ratio < 1.1
    assert abs(t14.rmax * 14.0 - t7.rmax * 7.0) < 20.0


def test_atom_parsers_and_splat(tmp_path):
    pdb = tmp_path / "x.pdb.gz"
    def atom(rec, serial, name, res, chain, x, el):
        # fixed PDB columns: chain id in 21-22 (two characters), x/y/z in 31-54, element 77-78
        return (f"{rec:<6s}{serial:5d} {name:<4s} {res:3s}{chain:>2s}{1:4d}    "
                f"{x:8.3f}{20.0:8.3f}{30.0:8.3f}{1.0:6.2f}{10.0:6.2f}          {el:>2s}  \n")
    with gzip.open(pdb, "wt") as fh:
        fh.write(atom("ATOM", 1, " CA", "ALA", "AA", 10.0, "C") + atom("ATOM", 2, " N", "ALA", "AA", 12.0, "N")
                 + atom("ATOM", 3, " N", "ALA", "BA", 99.0, "N") + atom("HETATM", 4, " O", "HOH", "AA", 0.0, "O"))
    xyz, z, _ = bt.read_pdb(str(pdb), chain_prefix="A")
    assert xyz.shape == (2, 3) and list(z) == [6, 7]
    np.testing.assert_allclose(xyz[1], [12.0, 20.0, 30.0])
    cif = tmp_path / "x.cif"
    cif.write_text("data_x\nloop_\n_atom_site.group_PDB\n_atom_site.type_symbol\n"
                   "_atom_site.label_atom_id\n_atom_site.auth_asym_id\n_atom_site.Cartn_x\n"
                   "_atom_site.Cartn_y\n_atom_site.Cartn_z\n"
                   "ATOM P \"O5'\" A 1.0 2.0 3.0\nATOM C \"C5'\" A 4.0 5.0 6.0\n#\n")
    xyz, z, _ = bt.read_mmcif(str(cif))
    np.testing.assert_allclose(xyz, [[1, 2, 3], [4, 5, 6]])
    assert list(z) == [15, 6]
    vol = bt.splat(np.array([[0.0, 0, 0], [14.0, 0, 0]]), np.array([6.0, 6.0]), 7.0)
    assert abs(vol.sum() - 12.0) < 1e-6  # splatting + blur + block sum keep the total
    grid = np.indices(vol.shape).reshape(3, -1)
    com = grid @ vol.ravel() / vol.sum()
    np.testing.assert_allclose(com, np.array(vol.shape) // 2, atol=0.05)


def test_user_classes_from_map_and_model(tmp_path):
    import mrcfile
    # a user map: the stored TRiC, brighter, off-centre in a non-cubic box, on a background
    m = np.full((40, 50, 44), 1.0, np.float32)
    m[2:36, 10:44, 5:39] += 3 * reference_map("tric")
    path = str(tmp_path / "my_tric.mrc")
    with mrcfile.new(path) as f:
        f.set_data(m)
        f.voxel_size = 7.0
    # a user model: two carbon atoms 40 A apart
    pdb = tmp_path / "two_atoms.pdb"
    pdb.write_text("".join(f"ATOM  {i:5d}  C   ALA A{i:4d}    {x:8.3f}{0.0:8.3f}{0.0:8.3f}  1.00  0.00"
                           f"           C  \n" for i, x in ((1, 0.0), (2, 40.0))))
    names = resolve_classes(f"tric,{path},{pdb}")
    assert names == ["tric", "my_tric", "two_atoms"]
    mine, ref = template("my_tric", 14.0), template("tric", 14.0)
    assert abs(mine.r95 - ref.r95) < 0.5 and abs(mine.rmax - ref.rmax) < 1.0
    r = generate_subtomograms(names, n_per_class=2, snr=0.1)
    assert r["class_names"] == names and r["data"].shape == (6, 24, 24, 24)
    bare = str(tmp_path / "novoxel.mrc")
    with mrcfile.new(bare) as f:
        f.set_data(m)
    with pytest.raises(EngineError, match="no voxel size"):
        template(resolve_classes(bare)[0], 14.0)
    with pytest.raises(EngineError, match="not found"):
        resolve_classes(str(tmp_path / "missing.pdb"))
    other = tmp_path / "sub"
    other.mkdir()
    (other / "two_atoms.pdb").write_text(pdb.read_text())
    with pytest.raises(EngineError, match="would both be named 'two_atoms'"):
        resolve_classes(f"{pdb},{other / 'two_atoms.pdb'}")
    clash = tmp_path / "tric.pdb"
    clash.write_text(pdb.read_text())
    with pytest.raises(EngineError, match="already a class"):
        resolve_classes(str(clash))


# ---------------------------------------------------------------- subtomograms

def test_subtomograms_reproducible_normalised_and_shaped():
    a = generate_subtomograms("ring,globule", n_per_class=3, snr=0.1, seed=3)
    b = generate_subtomograms("ring,globule", n_per_class=3, snr=0.1, seed=3)
    c = generate_subtomograms("ring,globule", n_per_class=3, snr=0.1, seed=4)
    np.testing.assert_array_equal(a["data"], b["data"])
    assert not np.allclose(a["data"], c["data"])
    d = a["data"]
    assert d.shape == (6, 24, 24, 24) and d.dtype == np.float32
    np.testing.assert_allclose(d.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(d.std(axis=(1, 2, 3)), 1, atol=1e-4)
    assert sorted(np.bincount(a["labels"])) == [3, 3]
    # another SNR with the same seed: same particles, same noise pattern, other level
    e = generate_subtomograms("ring,globule", n_per_class=3, snr=0.5, seed=3)
    np.testing.assert_array_equal(a["labels"], e["labels"])
    np.testing.assert_array_equal(a["rotations"], e["rotations"])


def test_rotation_convention_maps_template_to_particle():
    rod = template("rod", 14.0)  # the filament axis is the template's z
    def spread(vol):  # second moments along [z, y, x]
        g = np.indices(vol.shape).reshape(3, -1).astype(float)
        w = np.clip(vol, 0, None).ravel()
        c = g @ w / w.sum()
        return ((g - c[:, None]) ** 2) @ w / w.sum()
    assert np.argmax(spread(geometry.place(rod, np.eye(3), np.zeros(3), 24))) == 0
    z_to_x = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # xyz matrix: template z -> x
    assert np.argmax(spread(geometry.place(rod, z_to_x, np.zeros(3), 24))) == 2
    rots = geometry.random_rotations(np.random.default_rng(0), 2000)
    np.testing.assert_allclose(rots @ rots.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rots.shape), atol=1e-9)
    assert np.allclose(np.linalg.det(rots), 1)
    # uniform on SO(3): the rotated z axis is uniform on the sphere (mean ~0, E[z^2] = 1/3)
    zax = rots[:, :, 2]
    assert np.all(np.abs(zax.mean(0)) < 0.06) and abs((zax[:, 2] ** 2).mean() - 1 / 3) < 0.03


def test_missing_wedge_is_empty_and_measured_region_is_not():
    r = generate_subtomograms("tric", n_per_class=4, snr=0.05, tilt=60, seed=1)
    spec = np.abs(np.fft.rfftn(r["data"], axes=(1, 2, 3))) ** 2
    wedge = optics.wedge_mask((24, 24, 24), 60).astype(bool)
    missing = spec[:, ~wedge].mean()
    measured = spec[:, wedge].mean()
    assert missing < 1e-8 * measured
    # +-90 means no missing wedge at all
    assert optics.wedge_mask((24, 24, 24), 90).all()
    # geometry: kz = 0 plane is measured, the kz axis (kx = 0) is missing
    w = optics.wedge_mask((24, 24, 24), 60)
    assert w[0, 5, 3] == 1 and w[5, 0, 0] == 0 and w[3, 0, 2] == 1 and w[4, 0, 2] == 0


@pytest.mark.parametrize("snr", [0.02, 0.5])
def test_measured_snr_matches_request(snr):
    r = generate_subtomograms("default", n_per_class=4, snr=snr, seed=2, return_clean=True)
    clean, noise = r["clean"], r["data"] - r["clean"]
    measured = clean.var(axis=(1, 2, 3)) / noise.var(axis=(1, 2, 3))
    assert abs(np.mean(measured) / snr - 1) < 0.06
    assert np.all(np.abs(measured / snr - 1) < 0.15)


def test_dataset_snr_mode_uses_one_noise_level():
    r = generate_subtomograms("ribosome,globule", n_per_class=4, snr=0.1, snr_mode="dataset",
                              seed=0)
    assert np.allclose(r["noise_var"], r["noise_var"][0])
    assert abs(r["signal_var"].mean() / r["noise_var"][0] - 0.1) < 1e-6
    big = r["signal_var"][r["labels"] == 0].mean()
    small = r["signal_var"][r["labels"] == 1].mean()
    assert big > 5 * small  # the ribosome is far more visible than the globule


def test_defocus_spread():
    base = generate_subtomograms("ring,tric", n_per_class=3, snr=0.1, seed=1)
    spread = generate_subtomograms("ring,tric", n_per_class=3, snr=0.1, seed=1, defocus_spread_um=2.0,
                                   return_clean=True)
    np.testing.assert_array_equal(base["rotations"], spread["rotations"])  # same particles
    assert np.all(base["defocus_um"] == 5.0)
    d = spread["defocus_um"]
    assert np.all((d >= 3.0) & (d <= 7.0)) and d.std() > 0.2
    assert not np.allclose(base["data"], spread["data"])
    with pytest.raises(EngineError, match="underfocus"):
        generate_subtomograms(2, n_per_class=1, defocus_um=1.0, defocus_spread_um=2.0)


def test_particles_are_dark():
    r = generate_subtomograms("ribosome,tric,globule", n_per_class=3, snr=0.1, seed=5,
                              return_clean=True)
    for i, lab in enumerate(r["labels"]):
        # where the (unfiltered) particle has density, the simulated signal is negative
        density = geometry.place(template(r["class_names"][lab], 14.0), r["rotations"][i],
                                 r["shifts"][i], 24)
        inside = density > 0.5 * density.max()
        assert r["clean"][i][inside].mean() < -0.3
        assert np.corrcoef(density.ravel(), r["clean"][i].ravel())[0, 1] < -0.3


def test_ctf_sign_and_first_zero():
    shape = (1, 1, 256)
    h = optics.ctf(shape, 2.0, defocus_um=5.0)[0, 0]
    k = np.fft.rfftfreq(256, 2.0)
    assert abs(h[0] + 0.07) < 1e-6  # CTF(0) = -amplitude contrast: dark particles
    first_zero = k[np.argmax(h > 0)]
    expected = 1 / np.sqrt(optics.wavelength_a(300) * 5e4)  # pi lambda df k^2 ~ pi
    assert abs(first_zero - expected) < 2 * (k[1] - k[0])


def test_subtomogram_errors():
    with pytest.raises(EngineError, match="unknown class"):
        generate_subtomograms("ribosome,notaclass", n_per_class=1)
    with pytest.raises(EngineError, match="too small for class 'ribosome'.*--size >= "):
        generate_subtomograms("ribosome", n_per_class=1, size=16)
    with pytest.raises(EngineError, match="must be > 0"):
        generate_subtomograms(2, n_per_class=1, snr=0)
    with pytest.raises(EngineError, match="must be > 0"):
        generate_subtomograms(2, n_per_class=1, snr=-1)
    with pytest.raises(EngineError, match="finer than the map of class"):
        generate_subtomograms(2, n_per_class=1, voxel_A=4.0)
    with pytest.raises(EngineError, match="--tilt"):
        generate_subtomograms(2, n_per_class=1, tilt=0)


def test_simulate_subtomograms_files_and_stack(tmp_path):
    star = simulate_subtomograms(str(tmp_path / "a"), classes="ring,rod", n_per_class=3, snr=0.1,
                                 voxel_A=15.0, seed=1)
    t = read_star(star)
    assert t.name == "particles" and len(t) == 6
    assert t["rlnImageName"][0] == "subtomos/sub_000001.mrc"
    assert set(t["discaTrueClassName"]) == {"ring", "rod"}
    assert set(t["discaTrueClass"]) == {"1", "2"}
    v = read_image(t["rlnImageName"][5], str(tmp_path / "a"))
    assert v.shape == (24, 24, 24)
    assert voxel_size(str(tmp_path / "a" / "subtomos" / "sub_000006.mrc")) == pytest.approx(15.0)
    info = json.load(open(tmp_path / "a" / "simulation.json"))
    assert info["parameters"]["snr"] == 0.1 and len(info["particles"]) == 6
    star2 = simulate_subtomograms(str(tmp_path / "b"), classes="ring,rod", n_per_class=3, snr=0.1,
                                  voxel_A=15.0, seed=1, stack=True)
    t2 = read_star(star2)
    assert t2["rlnImageName"][2] == "3@particles.mrcs"
    np.testing.assert_array_equal(read_image(t2["rlnImageName"][2], str(tmp_path / "b")),
                                  read_image(t["rlnImageName"][2], str(tmp_path / "a")))
    assert t2["discaTrueClass"] == t["discaTrueClass"]


def test_cli_subtomos_and_errors(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert _run_cli(["simulate", "subtomos", out, "--classes", "2", "--n-per-class", "2",
                     "--snr", "0.05", "--stack", "--seed", "7"]) == 0
    t = read_star(os.path.join(out, "particles.star"))
    assert len(t) == 4 and t["discaTrueClassName"][0] in ("ribosome", "tric")
    before = sorted(os.listdir(os.path.join(out)))
    assert _run_cli(["simulate", "subtomos", out, "--classes", "nope", "--overwrite"]) == 2
    assert "unknown class name(s) nope" in capsys.readouterr().err
    assert _run_cli(["simulate", "subtomos", out, "--snr", "0", "--overwrite"]) == 2
    assert sorted(os.listdir(out)) == before  # a failed --overwrite keeps the earlier simulation
    assert _run_cli(["simulate", "subtomos", out, "--class-set", "similar", "--n-per-class", "1",
                     "--overwrite"]) == 0
    assert set(read_star(os.path.join(out, "particles.star"))["discaTrueClassName"]) == set(CLASS_SETS["similar"])
    assert _run_cli(["simulate", "subtomos", out, "--class-set", "similar", "--classes", "ring",
                     "--overwrite"]) == 2
    assert _run_cli(["simulate", "classes"]) == 0
    assert "similar" in capsys.readouterr().out


# ---------------------------------------------------------------- tomograms

SMALL = (48, 96, 96)


def test_tomogram_truth_on_dark_centres():
    # compact classes: their darkest blurred point is their centre of mass (elongated or
    # lopsided ones, e.g. rod, dumbbell, ribosome, can be 3-5 voxels off)
    r = generate_tomogram(SMALL, classes="tric,shell,blobs", n_particles=6, snr=5.0,
                          seed=0, distractors=False, return_clean=True)
    vol = r["volume"]
    assert vol.shape == SMALL and vol.dtype == np.float32
    assert abs(vol.mean()) < 1e-4 and abs(vol.std() - 1) < 1e-3
    assert len(r["centres"]) == 6
    blurred = ndimage.gaussian_filter(vol, 3.0)
    for c in r["centres"]:
        ic = np.round(c).astype(int)
        lo = np.maximum(ic - 4, 0)
        win = blurred[lo[0]:ic[0] + 5, lo[1]:ic[1] + 5, lo[2]:ic[2] + 5]
        m = np.array(np.unravel_index(np.argmin(win), win.shape)) + lo
        assert blurred[tuple(m)] < 0  # dark
        assert np.linalg.norm(m - c) <= 2.0, (m, c)
    # particles do not overlap
    d = np.linalg.norm(r["centres"][:, None] - r["centres"][None], axis=-1)
    radii = np.array([template(r["class_names"][k], 14.0).rmax for k in r["labels"]])
    assert np.all(d[np.triu_indices(6, 1)] >= (radii[:, None] + radii[None])[np.triu_indices(6, 1)])


def test_tomogram_snr_and_wedge_and_distractors():
    r = generate_tomogram(SMALL, classes="tric,ring", n_particles=4, snr=0.1, seed=1,
                          return_clean=True)
    assert abs(r["signal_var"] / r["noise_var"] - 0.1) < 1e-9
    noise = r["volume"] - r["clean"]
    scale = r["noise_var"] / noise.var()  # back to the units of signal_var
    # signal variance in 24^3 cubes is measured on particles only; gold/membrane excluded
    assert len(r["gold"]) >= 1 and r["vesicle"] is not None
    # the volume is a crop of a wedge-filtered padded field: deep inside the wedge (more
    # than 15 degrees from its edge) the power is under 2% of the measured region's
    kz, ky, kx = optics.rfft_freqs(SMALL, 1.0)
    w = np.broadcast_to(optics.wedge_mask(SMALL, 60).astype(bool), (48, 96, 49))
    deep = np.broadcast_to((np.abs(kz) > np.tan(np.deg2rad(75)) * np.abs(kx)) & (np.abs(kz) > 0.1), w.shape)
    for v in (noise, r["volume"]):
        spec = np.abs(np.fft.rfftn(v)) ** 2
        assert spec[deep].mean() < 0.02 * spec[w].mean()
    assert scale > 0
    # gold is the darkest thing in the clean tomogram
    g = np.round(r["gold"][0]).astype(int)
    assert r["clean"][tuple(g)] < np.percentile(r["clean"], 0.1)


def test_tomogram_measured_snr_in_particle_boxes():
    r = generate_tomogram(SMALL, classes="tric,ruvab", n_particles=5, snr=0.05, seed=2,
                          distractors=False, return_clean=True)
    noise = r["volume"] - r["clean"]
    boxes = []
    for c in np.round(r["centres"]).astype(int):
        lo = np.maximum(c - 12, 0)
        boxes.append(r["clean"][lo[0]:c[0] + 12, lo[1]:c[1] + 12, lo[2]:c[2] + 12].var())
    assert abs(np.mean(boxes) / noise.var() / 0.05 - 1) < 0.05
    # a tomogram without particles is pure wedge-filtered noise at the level of the classes
    empty = generate_tomogram(SMALL, classes="tric,ruvab", n_particles=0, snr=0.05,
                              distractors=False, return_clean=True)
    assert empty["clean"].std() < 1e-6 and abs(empty["volume"].std() - 1) < 1e-3
    assert 0.2 < empty["signal_var"] / r["signal_var"] < 5


def test_truth_star_coordinates_point_at_particles_in_written_tomogram(tmp_path):
    out = str(tmp_path / "hi")
    assert _run_cli(["simulate", "tomograms", out, "--n-tomograms", "1", "--shape", "40,96,80",
                     "--classes", "barrel,blobs", "--n-particles", "4", "--snr", "10",
                     "--no-distractors", "--seed", "3"]) == 0
    assert not os.path.exists(os.path.join(out, "distractors.star"))
    t = read_star(os.path.join(out, "truth.star"))
    vol = ndimage.gaussian_filter(read_volume(os.path.join(out, "tomo_001.mrc")), 3.0)
    for x, y, z in zip(t.column("rlnCoordinateX", float), t.column("rlnCoordinateY", float),
                       t.column("rlnCoordinateZ", float)):
        c = np.array([z, y, x])  # STAR X is the fastest MRC axis (last array index)
        ic = np.round(c).astype(int)
        lo = np.maximum(ic - 4, 0)
        win = vol[lo[0]:ic[0] + 5, lo[1]:ic[1] + 5, lo[2]:ic[2] + 5]
        m = np.array(np.unravel_index(np.argmin(win), win.shape)) + lo
        assert np.linalg.norm(m - c) <= 2.0


def test_slab_confines_particles_and_gold():
    r = generate_tomogram((80, 96, 96), classes="ring,globule", n_particles=8, snr=0.1, slab=30)
    z = np.r_[r["centres"][:, 0], [g[0] for g in r["gold"]]]
    assert z.min() >= (79 - 29) / 2 and z.max() <= (79 + 29) / 2
    with pytest.raises(EngineError, match="cannot fit"):
        generate_tomogram((80, 96, 96), classes="ribosome", n_particles=3, slab=12)


def test_tomogram_errors():
    with pytest.raises(EngineError, match="cannot fit 500 particles"):
        generate_tomogram(SMALL, classes="ribosome", n_particles=500)
    with pytest.raises(EngineError, match="--shape"):
        generate_tomogram("48,96", n_particles=1)
    with pytest.raises(EngineError, match="must be > 0"):
        generate_tomogram(SMALL, n_particles=1, snr=0)


def test_simulate_tomograms_cli_writes_truth(tmp_path):
    out = str(tmp_path / "t")
    assert _run_cli(["simulate", "tomograms", out, "--n-tomograms", "2", "--shape", "40,80,88",
                     "--classes", "ring,globule", "--n-particles", "5", "--snr", "0.1"]) == 0
    t = read_star(os.path.join(out, "truth.star"))
    assert len(t) == 10 and set(t["rlnTomoName"]) == {"tomo_001", "tomo_002"}
    x = t.column("rlnCoordinateX", float)
    z = t.column("rlnCoordinateZ", float)
    assert x.min() >= 0 and x.max() <= 87 and z.max() <= 39
    vol = read_volume(os.path.join(out, "tomo_002.mrc"))
    assert vol.shape == (40, 80, 88)
    assert voxel_size(os.path.join(out, "tomo_001.mrc")) == pytest.approx(14.0)
    gold = read_star(os.path.join(out, "distractors.star"))
    assert set(gold["discaDistractor"]) == {"gold"} and set(gold["rlnTomoName"]) <= {"tomo_001", "tomo_002"}
    paths, truth = simulate_tomograms(str(tmp_path / "api"), n_tomograms=1, shape=(40, 80, 88),
                                      classes="ring,globule", n_particles=5, snr=0.1)
    np.testing.assert_array_equal(read_volume(paths[0]), read_volume(os.path.join(out, "tomo_001.mrc")))
    assert read_star(truth)["rlnCoordinateX"] == t["rlnCoordinateX"][:5]


def test_template_halves_are_disjoint_fixed_and_drawn_reproducibly():
    from disca_engine.simulate.templates import TEMPLATE_HALVES, structure_set
    tuning, report = set(TEMPLATE_HALVES["tuning"]), set(TEMPLATE_HALVES["report"])
    assert not tuning & report and len(tuning) >= 10 and len(report) >= 10
    assert tuning | report <= set(CLASSES)
    assert set(CLASS_SETS["default"]) <= tuning  # the old preset was tuned on these
    assert set(CLASS_SETS["similar_report"]) <= report and set(CLASS_SETS["similar_tuning"]) <= tuning
    a = structure_set("report", 5, 1)
    assert a == structure_set("report", 5, 1) and len(set(a)) == 5 and set(a) <= report
    assert structure_set("report", 5, 2) != a
    with pytest.raises(EngineError, match="holds"):
        structure_set("tuning", len(tuning) + 1, 0)


def test_fragments_are_smaller_than_their_complexes():
    for part, whole in (("ribo60s", "ribosome"), ("ribo40s", "ribosome"), ("tric_ring", "tric"),
                        ("ruvb3", "ruvab")):
        assert reference_map(part).sum() < 0.8 * reference_map(whole).sum()


def test_junk_boxes_are_labelled_and_look_like_junk():
    from disca_engine.simulate import junk
    g = generate_subtomograms(["ribosome"], 20, snr=0.1, seed=0, junk_fraction=0.2, return_clean=True)
    labels = g["labels"]
    assert len(labels) == 25 and np.sum(labels == 1) == 5  # 20% of the boxes
    assert np.all(np.isfinite(g["data"]))
    rng = np.random.default_rng(0)
    assert not junk.render("empty", 24, 14.0, rng).any()
    gold = junk.render("gold", 24, 14.0, rng)
    assert gold.max() > 10 * 0.096  # far denser than protein
    sheet = junk.render("membrane", 24, 14.0, rng)
    assert (sheet > 0.05).mean() > 0.05  # a sheet crossing the box, not a compact particle
    with pytest.raises(EngineError, match="junk-fraction"):
        generate_subtomograms(["ribosome"], 4, snr=0.1, junk_fraction=0.7)


def test_simulate_subtomograms_names_the_junk_class(tmp_path):
    import contextlib
    import io
    from disca_engine.io.star import read_star
    with contextlib.redirect_stdout(io.StringIO()):
        star = simulate_subtomograms(str(tmp_path), classes="ruvab", n_per_class=8, snr=0.1,
                                     junk_fraction=0.2, seed=0)
    t = read_star(star)
    assert sorted(set(t.column("discaTrueClassName"))) == ["junk", "ruvab"]
    assert t.column("discaTrueClassName").count("junk") == 2


def test_picks_are_named_by_the_nearest_true_particle_of_their_tomogram():
    from disca_engine.io.star import StarTable
    from disca_engine.simulate.truth import JUNK, names_of_picks
    truth = StarTable({"rlnTomoName": ["t1", "t1", "t2"], "rlnCoordinateX": [10, 20, 10],
                       "rlnCoordinateY": [10, 10, 10], "rlnCoordinateZ": [5, 5, 5],
                       "discaTrueClassName": ["ring", "shell", "tric"]})
    tomos = ["t1", "t1", "t1", "t2", "t3"]
    xyz = [[11, 10, 5], [18, 11, 5], [40, 40, 5], [10, 13, 9], [10, 10, 5]]
    # nearest of t1's two; 22 voxels from any: junk; t2's within 5; a tomogram without truth
    assert names_of_picks(tomos, xyz, truth).tolist() == ["ring", "shell", JUNK, "tric", JUNK]
    assert names_of_picks(tomos, xyz, truth, radius=4.0).tolist()[3] == JUNK   # 5 voxels away
