"""DoG picking: sign, suppression, borders, binning, chunking, threshold, STAR output, errors."""
import numpy as np
import pytest
from scipy import ndimage

from disca_engine.errors import EngineError
from disca_engine.io.mrc import write_volume
from disca_engine.io.star import read_star
from disca_engine.picking import (dog_preview, make_params, pick_file, pick_tomogram, read_coords,
                                  read_pick_stats,
                                  to_input_voxels)
from disca_engine.picking.dog import dog_reference, dog_volume
from disca_engine.picking.peaks import local_maxima, suppress
from disca_engine.picking.volume import ArraySource

VOX = 10.0
DIAM = 80.0  # 8 voxels: sigma1 = 2.31 voxels


def blobs(shape, centres, amp=-3.0, sigma=2.5, noise=1.0, seed=0):
    """Gaussian blobs (dark when amp < 0) at (x, y, z) voxel centres in white noise."""
    rng = np.random.default_rng(seed)
    v = (noise * rng.normal(size=shape)).astype(np.float32)
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    amps = np.broadcast_to(amp, (len(centres),))
    for (x, y, z), a in zip(centres, amps):
        v += a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) / (2 * sigma ** 2))
    return v


def nearest(picks_xyz, point):
    return np.min(np.linalg.norm(np.asarray(picks_xyz) - np.asarray(point, float), axis=1))


def test_dark_blob_gives_positive_score_and_is_the_top_pick():
    v = blobs((40, 48, 44), [(20, 25, 18)], noise=0.3)
    r = pick_tomogram(v, VOX, DIAM)
    assert np.allclose(r.xyz[0], (20, 25, 18))
    assert r.scores[0] > 0 and r.scores[0] > r.threshold


def test_bright_contrast_finds_bright_and_not_dark():
    v = blobs((40, 48, 44), [(12, 14, 20), (32, 34, 20)], amp=[-3.0, 3.0], noise=0.3)
    dark = pick_tomogram(v, VOX, DIAM, contrast="dark")
    bright = pick_tomogram(v, VOX, DIAM, contrast="bright")
    assert np.allclose(dark.xyz[0], (12, 14, 20)) and nearest(dark.xyz, (32, 34, 20)) > 3
    assert np.allclose(bright.xyz[0], (32, 34, 20)) and nearest(bright.xyz, (12, 14, 20)) > 3


def test_suppression_keeps_the_stronger_of_two_close_blobs():
    centres = [(18, 24, 20), (25, 24, 20)]  # 7 voxels apart
    v = blobs((40, 48, 44), centres, amp=[-3.0, -5.0], noise=0.05, sigma=2.0)
    far = pick_tomogram(v, VOX, DIAM, min_distance_A=50.0, threshold_sigma=6)
    assert nearest(far.xyz, centres[0]) < 1 and nearest(far.xyz, centres[1]) < 1
    close = pick_tomogram(v, VOX, DIAM, min_distance_A=100.0, threshold_sigma=6)
    assert np.allclose(close.xyz[0], centres[1])
    assert nearest(close.xyz, centres[0]) > 1  # the weaker blob was suppressed
    d = np.linalg.norm(close.xyz[:, None] - close.xyz[None], axis=2)
    assert np.all(d[np.triu_indices(len(d), 1)] > 10.0)


def test_suppress_equals_sequential_greedy():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 30, size=(400, 3))
    scores = rng.normal(size=400)
    kept = suppress(pts, scores, 4.0)
    ref = []
    for i in np.argsort(-scores):
        if all(np.linalg.norm(pts[i] - pts[j]) > 4.0 for j in ref):
            ref.append(i)
    assert list(kept) == ref


def test_no_pick_within_border():
    v = blobs((40, 48, 44), [(2, 25, 18), (20, 25, 18)], noise=0.3)
    r = pick_tomogram(v, VOX, DIAM, border_A=60.0, threshold=-np.inf)
    x, y, z = r.xyz.T
    assert len(r) > 5
    assert x.min() >= 6 and y.min() >= 6 and z.min() >= 6
    assert x.max() <= 44 - 1 - 6 and y.max() <= 48 - 1 - 6 and z.max() <= 40 - 1 - 6
    assert nearest(r.xyz, (2, 25, 18)) > 2


def test_binned_pick_scales_back_to_input_voxels():
    assert np.allclose(to_input_voxels([[3, 4, 5]], 2), [[10.5, 8.5, 6.5]])
    assert np.allclose(to_input_voxels([[3, 4, 5]], 3), [[16, 13, 10]])
    centre = (33, 41, 29)
    v = blobs((64, 80, 72), [centre], sigma=4.0, noise=0.2)
    r = pick_tomogram(v, VOX, 160.0, bin=2)
    assert r.params.bin == 2 and r.params.sigma1_vox >= 2.0
    assert np.all(np.abs(r.xyz[0] - centre) <= 1.0)


def test_chunked_dog_equals_unchunked_and_reference_in_interior():
    v = blobs((48, 40, 36), [(10, 12, 20)], noise=1.0)
    src = ArraySource(v)
    whole = dog_volume(src, 2.0, 2.2)
    chunked = dog_volume(src, 2.0, 2.2, max_chunk_bytes=300_000)  # chunks of a few planes
    assert np.abs(whole - chunked).max() < 1e-3 * np.abs(whole).max()
    ref = dog_reference(v, 2.0, 2.2)
    h = 9
    inner = (slice(h, -h),) * 3
    assert np.abs(whole[inner] - ref[inner]).max() < 2e-3 * np.abs(ref).max()
    part = dog_volume(src, 2.0, 2.2, z_range=(20, 30))
    assert np.abs(part - whole[20:30]).max() < 1e-3 * np.abs(whole).max()


def test_band_limited_dog_matches_spatial_filters_for_large_sigma():
    # sigma1 = 4: the FFT keeps only ~45% of ky and kx; the result must not change
    from disca_engine.picking.dog import _plan, halo_for
    v = blobs((52, 64, 72), [(36, 32, 26)], sigma=5.0, noise=1.0)
    band = _plan(v.shape, halo_for(4.4), 4.0)
    assert len(band.ky) < 0.6 * band.nyp and band.kx < 0.6 * (band.nxp // 2 + 1)
    fft = dog_volume(ArraySource(v), 4.0, 4.4, sign=-1)
    ref = dog_reference(v, 4.0, 4.4, sign=-1)
    inner = (slice(18, -18),) * 3
    assert np.abs(fft[inner] - ref[inner]).max() < 2e-3 * np.abs(ref).max()
    chunked = dog_volume(ArraySource(v), 4.0, 4.4, sign=-1, max_chunk_bytes=50 * len(band.ky) * band.kx * 8)
    assert np.abs(fft - chunked).max() < 1e-3 * np.abs(fft).max()


def test_threshold_first_maxima_equal_maximum_filter_peaks():
    rng = np.random.default_rng(3)
    d = ndimage.gaussian_filter(rng.normal(size=(30, 32, 34)), 1.5).astype(np.float32)
    thr = float(np.percentile(d, 80))
    zyx, vals = local_maxima(d, thr, (1, 1, 1))
    ref = (d == ndimage.maximum_filter(d, size=3, mode="nearest")) & (d > thr)
    ref[[0, -1]] = False
    ref[:, [0, -1]] = False
    ref[:, :, [0, -1]] = False
    assert len(zyx) > 10
    assert sorted(map(tuple, zyx)) == sorted(map(tuple, np.argwhere(ref)))
    assert np.allclose(vals, d[tuple(zyx.T)])


def test_threshold_manual_and_automatic():
    v = blobs((40, 48, 44), [(20, 25, 18)], noise=1.0)
    auto = pick_tomogram(v, VOX, DIAM)
    assert np.isclose(auto.threshold, auto.background_median + 3 * auto.background_sigma)
    strict = pick_tomogram(v, VOX, DIAM, threshold_sigma=5)
    assert len(strict) < len(auto)
    manual = pick_tomogram(v, VOX, DIAM, threshold=auto.scores[2])
    assert manual.threshold == pytest.approx(auto.scores[2])
    assert np.all(manual.scores > manual.threshold) and len(manual) == 2


def test_max_picks_and_mask():
    v = blobs((40, 48, 44), [(12, 24, 20), (32, 24, 20)], noise=0.5)
    capped = pick_tomogram(v, VOX, DIAM, max_picks=3)
    assert len(capped) == 3
    mask = np.zeros(v.shape, np.float32)
    mask[:, :, 22:] = 1  # keep x >= 22 only
    m = pick_tomogram(v, VOX, DIAM, mask=mask)
    assert len(m) and m.xyz[:, 0].min() >= 22
    assert np.allclose(m.xyz[0], (32, 24, 20))
    with pytest.raises(EngineError, match="mask shape"):
        pick_tomogram(v, VOX, DIAM, mask=mask[:, :, :-1])


def test_recall_on_easy_blobs():
    rng = np.random.default_rng(7)
    grid = [(x, y, z) for x in (12, 28, 44, 60) for y in (12, 28, 44) for z in (12, 28)]
    centres = [tuple(c + rng.integers(-2, 3) for c in g) for g in grid]
    v = blobs((40, 56, 72), centres, amp=-1.5, noise=1.0, sigma=2.5)
    r = pick_tomogram(v, VOX, DIAM)
    top = r.xyz[:len(centres)]
    found = [nearest(top, c) <= DIAM / VOX / 2 for c in centres]
    assert np.mean(found) >= 0.95


def test_pick_file_star_sorted_and_documented(tmp_path):
    v = blobs((40, 48, 44), [(12, 24, 20), (32, 24, 20)], amp=[-2.0, -4.0], noise=0.5)
    write_volume(str(tmp_path / "tomo_01.mrc"), v, VOX)
    out = tmp_path / "c.star"
    r = pick_file(str(tmp_path / "tomo_01.mrc"), str(out), DIAM)
    t = read_star(str(out))
    assert t.name == "coordinates" and len(t) == len(r) > 2
    assert set(t["rlnTomoName"]) == {"tomo_01"}
    fom = t.column("rlnAutopickFigureOfMerit", float)
    assert np.all(np.diff(fom) <= 0)
    assert np.allclose([t.column("rlnCoordinateX", float)[0], t.column("rlnCoordinateY", float)[0],
                        t.column("rlnCoordinateZ", float)[0]], (32, 24, 20))
    assert f"threshold {r.threshold:.6g}" in out.read_text()
    xyz, scores, rows, name = read_coords(str(out))
    assert name == "tomo_01" and np.allclose(xyz, r.xyz, atol=0.01) and list(rows) == list(range(len(r)))
    # the threshold is data beside the STAR (viewers read it, not the header comment)
    stats = read_pick_stats(str(out))
    assert (tmp_path / "c.pick.json").is_file()
    assert stats["threshold"] == pytest.approx(r.threshold) and stats["n_picks"] == len(r)
    assert stats["threshold_mode"] == "auto" and stats["background_sigma"] > 0
    assert read_pick_stats(str(tmp_path / "missing.star")) is None


def test_pick_cli_errors(tmp_path, capsys):
    from disca_engine.cli import main
    v = blobs((24, 24, 24), [(12, 12, 12)])
    write_volume(str(tmp_path / "novox.mrc"), v)  # no voxel size in the header
    with pytest.raises(SystemExit) as e:
        main(["pick", "--input", str(tmp_path / "novox.mrc"), "--output", str(tmp_path / "c.star"),
              "--particle-diameter-A", "80"])
    assert e.value.code == 2 and "--voxel-A" in capsys.readouterr().err
    main_ok = ["pick", "--input", str(tmp_path / "novox.mrc"), "--output", str(tmp_path / "c.star"),
               "--particle-diameter-A", "80", "--voxel-A", "10", "--max-picks", "1"]
    with pytest.raises(SystemExit) as e:
        main(main_ok)
    assert e.value.code == 0 and len(read_star(str(tmp_path / "c.star"))) == 1
    v[3, 4, 5] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        pick_tomogram(v, VOX, DIAM)
    with pytest.raises(EngineError, match="contrast"):
        make_params(VOX, DIAM, contrast="grey")


def test_dog_preview_shows_picks_near_the_slice():
    v = blobs((48, 40, 40), [(20, 20, 30), (20, 20, 10)], noise=0.3)
    p = dog_preview(v, VOX, DIAM, z=30)
    tomo_slice, dog_slice, picks, threshold, (counts, edges) = p
    assert tomo_slice.shape == dog_slice.shape == (40, 40)
    assert np.allclose(picks.xyz[0], (20, 20, 30)) and nearest(picks.xyz, (20, 20, 10)) > 5
    assert np.all(np.abs(picks.xyz[:, 2] - 30) <= 5)
    assert dog_slice[20, 20] > threshold and counts.sum() > 0 and len(edges) == len(counts) + 1


def test_recall_on_simulated_tomogram_at_high_snr():
    sim = pytest.importorskip("disca_engine.simulate")
    s = sim.generate_tomogram(shape=(48, 112, 112), voxel_A=14.0, classes="ribosome,tric",
                              n_particles=12, snr=0.5, distractors=False, seed=2)
    diam = {n: sim.template(n, 14.0).diameter_a for n in ("ribosome", "tric")}
    radii = np.array([diam[("ribosome", "tric")[lab]] / 2 / 14.0 for lab in s["labels"]])
    r = pick_tomogram(s["volume"], 14.0, 250.0, border_A=50.0)
    true_xyz = s["centres"][:, ::-1]
    top = r.xyz[:2 * len(true_xyz)]
    d = np.linalg.norm(true_xyz[:, None] - top[None], axis=2)
    recall = np.mean(d.min(axis=1) <= radii)
    precision = np.mean(d.min(axis=0) <= radii.max())
    assert recall >= 0.9 and precision >= 0.8


def test_mask_file_and_binning_together(tmp_path):
    v = blobs((48, 48, 48), [(14, 24, 24), (34, 24, 24)], sigma=3.0, noise=0.3)
    write_volume(str(tmp_path / "t.mrc"), v, VOX)
    mask = np.zeros(v.shape, np.float32)
    mask[:, :, :24] = 1  # keep x < 24 only
    write_volume(str(tmp_path / "m.mrc"), mask, VOX)
    r = pick_file(str(tmp_path / "t.mrc"), str(tmp_path / "c.star"), 120.0, mask=str(tmp_path / "m.mrc"),
                  bin=2, quiet=True)
    assert len(r) and r.xyz[:, 0].max() < 24
    assert np.all(np.abs(r.xyz[0] - (14, 24, 24)) <= 1.0)
    with pytest.raises(EngineError, match="mask not found"):
        pick_file(str(tmp_path / "t.mrc"), str(tmp_path / "c2.star"), 120.0, mask=str(tmp_path / "x.mrc"))


def test_dog_preview_with_binning_and_mask_reports_input_voxels():
    v = blobs((48, 48, 48), [(14, 24, 24), (34, 24, 24)], sigma=3.0, noise=0.3)
    mask = np.ones(v.shape, np.float32)
    mask[:, :, 24:] = 0
    p = dog_preview(v, VOX, 120.0, z=24, bin=2, mask=mask)
    assert p.tomogram_slice.shape == (24, 24) and p.picks.params.bin == 2
    assert len(p.picks) and p.picks.xyz[:, 0].max() < 24
    assert np.all(np.abs(p.picks.xyz[0] - (14, 24, 24)) <= 1.0)


def test_preview_histogram_keeps_outliers_in_one_last_bin():
    from disca_engine.picking.pipeline import _robust_histogram
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(1.0, 0.1, 400), [60.0, 80.0]])
    counts, edges = _robust_histogram(values, 50)
    assert counts.sum() == len(values) and len(edges) == 52
    assert edges[50] < 3.0 and edges[-1] == 80.0 and counts[-1] == 2
    counts, edges = _robust_histogram(rng.normal(1.0, 0.1, 400), 50)  # nothing beyond: even bins
    assert len(edges) == 51 and counts.sum() == 400
