"""Half-set FSC and resolution (align/fsc.py), the per-cluster measures
(cluster_quality.py) and the verdicts and cluster table (verdicts.py)."""
import numpy as np
import pytest

from disca_engine import settings as S
from disca_engine.clustering import cluster_quality, verdicts
from disca_engine.clustering.align import fourier, fsc

from test_alignment import _simulated, _Stack


def _band_limited(s, k_max, seed):
    """White noise keeping only the Fourier shells up to ``k_max``."""
    f = np.fft.fftn(np.random.default_rng(seed).standard_normal((s, s, s)))
    f[fourier.freq_radius(s) > k_max] = 0
    return np.fft.ifftn(f).real


def test_halves_of_one_volume_with_independent_noise_cross_where_the_signal_ends():
    s, k_max = 32, 6
    rng = np.random.default_rng(1)
    signal = _band_limited(s, k_max, 0)
    noise = 0.3 * signal.std()
    a = signal + noise * rng.standard_normal(signal.shape)
    b = signal + noise * rng.standard_normal(signal.shape)
    curve = fsc.fsc_curve(a, b)
    assert curve.shape == (s // 2,)
    assert curve[:k_max - 1].min() > 0.6          # signal dominates below the band edge
    shell = fsc.crossing_shell(curve)
    assert k_max - 0.5 <= shell <= k_max + 1.0
    res, nyquist = fsc.resolution(curve, s, 10.0)
    assert not nyquist and res == pytest.approx(s * 10.0 / shell)
    assert 40 < res < 60


def test_identical_halves_reach_nyquist():
    vol = np.random.default_rng(2).standard_normal((24, 24, 24))
    curve = fsc.fsc_curve(vol, vol.copy())
    assert np.allclose(curve, 1.0, atol=1e-4)
    assert fsc.resolution(curve, 24, 7.5) == (15.0, True)   # 2 voxels, flagged
    assert fsc.band_reliability(vol, vol) == pytest.approx(1.0, abs=1e-6)


def test_independent_noise_halves_have_no_resolution_and_no_reliability():
    rng = np.random.default_rng(3)
    shells = []
    for _ in range(5):
        a, b = rng.standard_normal((2, 32, 32, 32))
        shells.append(fsc.crossing_shell(fsc.fsc_curve(a, b, fourier.soft_sphere(32))))
        assert fsc.band_reliability(a, b) < 0.05
    # chance correlation can pass 0.143 on the first shells (few voxels), never further out
    assert all(sh is None or sh < 3 for sh in shells)


def test_a_curve_below_the_threshold_from_the_first_shell_gives_none():
    assert fsc.crossing_shell([0.1, 0.5, 0.9]) is None
    assert fsc.resolution([0.1, 0.5], 24, 10.0) == (None, False)
    assert fsc.crossing_shell([1.0, 0.9, 0.0]) == pytest.approx(2 + 0.757 / 0.9, abs=1e-3)


def _q(resolution_a, null_ratio, nyquist=False, reliability=0.8, signal=0.2, flat=0.05):
    return {"resolution_A": resolution_a, "nyquist_limited": nyquist, "null_ratio": null_ratio,
            "reliability": reliability, "signal_fraction": signal, "flatness": flat, "fsc": [],
            "mean_score": 0.3, "mean_null_score": 0.1, "measured": 40}


def test_verdicts_of_constructed_measures():
    def judge(**kw):
        return verdicts.verdict(dict(_q(**kw), voxel_size=10.0))
    v, why = judge(resolution_a=38.0, null_ratio=2.1)
    assert v == verdicts.STRUCTURE and why == ("FSC 0.143 at 38 Å; members match the average "
                                               "2.10x better than noise")
    v, why = judge(resolution_a=40.0, null_ratio=1.05)
    assert v == verdicts.JUNK_LIKE and "1.05x better than noise (under 1.3x)" in why
    # empty boxes: the half averages disagree, whatever the chance FSC crossing
    v, why = judge(resolution_a=85.0, null_ratio=1.5, reliability=0.16)
    assert v == verdicts.JUNK_LIKE and "reliability 0.16" in why
    # gold: averages to Nyquist, but explains nearly all of its members' variance
    v, why = judge(resolution_a=20.0, null_ratio=3.4, nyquist=True, reliability=0.98, signal=0.95)
    assert v == verdicts.JUNK_LIKE and "signal fraction 0.95" in why and "20 Å or better" in why
    # a membrane patch: a sheet
    v, why = judge(resolution_a=31.0, null_ratio=2.3, flat=0.72)
    assert v == verdicts.JUNK_LIKE and "sheet" in why
    # each threshold is where the rule says
    assert judge(resolution_a=40.0, null_ratio=verdicts.MIN_NULL_RATIO)[0] == verdicts.STRUCTURE
    assert judge(resolution_a=40.0, null_ratio=2.0,
                 signal=verdicts.MAX_SIGNAL - 0.01)[0] == verdicts.STRUCTURE
    assert verdicts.verdict(None)[0] == verdicts.JUNK_LIKE


def test_cluster_table_is_sorted_by_verdict_then_resolution():
    quality = {0: _q(80.0, 1.0), 1: _q(60.0, 2.0), 2: _q(35.0, 1.9), 3: _q(None, 1.1),
               5: _q(20.0, 3.0, signal=0.9)}
    rows = verdicts.cluster_table(quality, [30, 20, 10, 40, 1, 5], 10.0)
    assert [r["cluster"] for r in rows] == [3, 2, 6, 1, 4, 5]
    assert [r["verdict"] for r in rows] == [verdicts.STRUCTURE] * 2 + [verdicts.JUNK_LIKE] * 4
    assert rows[0]["share"] == pytest.approx(10 / 106, abs=1e-4)
    lines = verdicts.summary_lines(rows)
    assert len(lines) == 6 and "cluster   3  structure" in lines[0]


def test_near_pairs_keeps_the_pairs_close_to_merging():
    records = [{"pair": [1, 2], "agreement": 0.72, "z": 9.0, "held_out_ratio": 0.9},
               {"pair": [1, 3], "agreement": 0.10, "z": 30.0, "held_out_ratio": 0.5},
               {"pair": [2, 3], "agreement": 0.20, "z": 5.0, "held_out_ratio": 0.95}]
    near = verdicts.near_pairs(records, threshold=0.8, evidence=4.0)
    assert [r["pair"] for r in near] == [[1, 2], [2, 3]]


def test_measures_tell_a_structure_cluster_from_a_noise_cluster():
    data, truth = _simulated(["ribosome"], 24, 0.5, 60)
    noise = np.random.default_rng(4).standard_normal((24,) + data.shape[1:]).astype(np.float32)
    particles = _Stack(np.concatenate([data, noise]))
    particles.voxel_size = 10.0
    labels = np.repeat([0, 1], 24)
    z = np.zeros((48, 2), np.float32)
    q = cluster_quality.measure(particles, labels, z, S.Alignment(rotations=200), 1, 0,
                                lambda m: None)
    assert set(q) == {0, 1} and len(q[0]["fsc"]) == particles.box // 2
    assert q[0]["null_ratio"] > q[1]["null_ratio"] + 0.3
    assert q[0]["reliability"] > q[1]["reliability"]
    rows = verdicts.cluster_table(q, [24, 24], 10.0)
    assert [(r["cluster"], r["verdict"]) for r in rows] == [(1, verdicts.STRUCTURE),
                                                            (2, verdicts.JUNK_LIKE)]


def test_cluster_writes_the_sorted_table_and_prints_it(tmp_path):
    """A tiny real run (fast preset): report.json carries one row per cluster, sorted by
    verdict then resolution, and the command prints one line per cluster in that order."""
    pytest.importorskip("tensorflow")
    import json
    from test_cluster_cli import RUN, _blobs, cli
    data = _blobs(str(tmp_path / "blobs"))
    out = tmp_path / "run"
    r = cli("cluster", "--input", data, "--output", out, *RUN)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    rows = report["clusters"]
    assert sorted(r["cluster"] for r in rows) == list(range(1, report["k"] + 1))
    assert [r["size"] for r in sorted(rows, key=lambda r: r["cluster"])] == report["cluster_sizes"]
    assert rows == sorted(rows, key=verdicts.sort_key)
    for row in rows:
        assert len(row["fsc"]) == 13 // 2 and row["verdict"] in (verdicts.STRUCTURE,
                                                                  verdicts.JUNK_LIKE)
        assert row["reason"] and row["null_ratio"] > 0
    assert report["verdict_rule"]["min_null_ratio"] == verdicts.MIN_NULL_RATIO
    printed = [ln for ln in r.stdout.splitlines() if ln.startswith("  cluster ")]
    assert [int(ln.split()[1]) for ln in printed] == [row["cluster"] for row in rows]
    assert "structure-like" in r.stdout


def test_flatness_tells_a_sheet_from_a_ball_and_a_rod():
    s = 24
    ax = np.arange(s) - (s - 1) / 2
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    m = fourier.soft_sphere(s)
    sheet = (np.abs(z) < 1.5).astype(np.float32)
    ball = (z ** 2 + y ** 2 + x ** 2 < 25).astype(np.float32)
    rod = ((y ** 2 + x ** 2 < 4) & (np.abs(z) < 9)).astype(np.float32)
    assert cluster_quality.flatness(sheet, m) > 0.7
    assert cluster_quality.flatness(ball, m) < 0.1
    assert cluster_quality.flatness(rod, m) < 0.2     # a filament is not a membrane


def test_signal_fraction_is_the_share_of_the_members_the_average_explains():
    rng = np.random.default_rng(5)
    m = fourier.soft_sphere(16)
    signal = _band_limited(16, 4, 1)
    signal /= signal.std()
    for snr, expect in ((0.1, 0.1 / 1.1), (10.0, 10 / 11)):
        members = np.sqrt(snr) * signal + rng.standard_normal((200, 16, 16, 16))
        got = cluster_quality.signal_fraction(members.mean(0), members, m)
        assert got == pytest.approx(expect, abs=0.05)


def test_clusters_are_measured_in_a_cube_about_the_particles_size_whatever_the_box():
    """A 48^3 box of a 15-voxel particle is measured in its central 24^3 (1.6 diameters,
    as the rule was tuned), holding the same voxels as a 24^3 box of it; whole boxes
    without a mask radius or when the box is already smaller."""
    data = np.random.default_rng(0).standard_normal((3, 48, 48, 48)).astype(np.float32)
    data[:, 24, 24, 24] = 100.0                       # the centre voxel of an even box
    particles = _Stack(data)
    view = cluster_quality.measured_view(particles, 7.5)
    assert view.box == 24
    boxes = next(view.iter_batches(None, 3))
    assert boxes.shape == (3, 24, 24, 24) and np.all(boxes[:, 12, 12, 12] == 100.0)
    assert np.array_equal(boxes, data[:, 12:36, 12:36, 12:36])
    assert cluster_quality.measured_view(particles, None) is particles
    assert cluster_quality.measured_view(particles, 20.0) is particles
    odd = cluster_quality.measured_view(_Stack(data[:, :47, :47, :47]), 7.5)
    assert odd.box == 25                               # the box's parity: the centre stays


def test_measures_in_a_large_box_follow_the_particle_and_still_tell_structure_from_noise():
    """The same ribosome and noise clusters padded into 40^3 boxes: measured in their
    central cube, the curves have that cube's shells and the verdicts stay right."""
    data, _ = _simulated(["ribosome"], 24, 0.5, 60)
    noise = np.random.default_rng(4).standard_normal((24,) + data.shape[1:]).astype(np.float32)
    boxes = np.pad(np.concatenate([data, noise]), ((0, 0),) + ((8, 8),) * 3)
    boxes += np.random.default_rng(5).standard_normal(boxes.shape).astype(np.float32) \
        * (boxes == 0)
    particles = _Stack(boxes)
    particles.voxel_size = 10.0
    view = cluster_quality.measured_view(particles, 7.5)
    q = cluster_quality.measure(view, np.repeat([0, 1], 24), np.zeros((48, 2), np.float32),
                                S.Alignment(rotations=200), 1, 0, lambda m: None)
    assert view.box == 24 and len(q[0]["fsc"]) == 12
    rows = verdicts.cluster_table(q, [24, 24], 10.0)
    assert [(r["cluster"], r["verdict"]) for r in rows] == [(1, verdicts.STRUCTURE),
                                                            (2, verdicts.JUNK_LIKE)]
