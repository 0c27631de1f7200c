"""Report tests on a small fake-but-realistic cluster folder (tomogram with dark particles of
three shapes, boxes cut from it, features with cluster structure, iterations, report.json as in
docs/engine-contract.md), plus an integration test on a real ``disca-engine cluster`` run."""
import json
import os
import subprocess
import sys

import matplotlib.image as mpimg
import mrcfile
import numpy as np
import pytest

from disca_engine.io import mrc, star
from disca_engine.io.star import StarTable

BOX, VOXEL, K, PER_CLASS = 16, 14.0, 3, 14
TOMO_SHAPE = (40, 110, 120)


def _templates(box):
    g = np.arange(box) - (box - 1) / 2
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    sphere = (x ** 2 + y ** 2 + z ** 2 <= 25).astype(np.float32)
    rod = ((y ** 2 + z ** 2 <= 4) & (np.abs(x) <= 6)).astype(np.float32)
    dumbbell = (((x - 3.5) ** 2 + y ** 2 + z ** 2 <= 7) | ((x + 3.5) ** 2 + y ** 2 + z ** 2 <= 7)).astype(np.float32)
    return [sphere, rod, dumbbell]


def build_fake_run(root, decoded_ok=True, seed=0):
    """A cluster folder as `disca-engine cluster` writes it; returns (cluster_dir, tomo_path)."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    tomo = np.zeros(TOMO_SHAPE, np.float32)
    truth, centres = [], []
    h = BOX // 2
    grid = [(z, y, x) for z in (12, 27) for y in range(h, TOMO_SHAPE[1] - h, BOX + 1)
            for x in range(h, TOMO_SHAPE[2] - h, BOX + 1)]
    order = rng.permutation(len(grid))[:K * PER_CLASS]
    temps = _templates(BOX)
    for n, gi in enumerate(order):
        cls = n % K
        z, y, x = grid[gi]
        tomo[z - h:z + h, y - h:y + h, x - h:x + h] -= temps[cls]  # dark particles
        truth.append(cls + 1)
        centres.append((x, y, z))
    tomo += rng.normal(0, 0.5, tomo.shape).astype(np.float32)
    tomo_path = os.path.join(root, "tomo_a.mrc")
    mrc.write_volume(tomo_path, tomo, VOXEL)
    out = os.path.join(root, "run")
    os.makedirs(os.path.join(out, "subtomos"), exist_ok=True)
    names = []
    vols = []
    for i, (x, y, z) in enumerate(centres):
        v = tomo[z - h:z + h, y - h:y + h, x - h:x + h]
        v = (v - v.mean()) / v.std()
        vols.append(v)
        names.append(f"subtomos/p_{i:04d}.mrc")
        mrc.write_volume(os.path.join(out, names[-1]), v, VOXEL)
    truth = np.array(truth)
    n = len(truth)
    # features with cluster structure; final labels = truth except two mistakes
    labels = truth.copy()
    labels[:2] = labels[:2] % K + 1
    means = rng.normal(0, 1, (K, 1024)).astype(np.float32)
    feats = means[labels - 1] + rng.normal(0, 0.6, (n, 1024)).astype(np.float32)
    np.save(os.path.join(out, "features.npy"), feats)
    for it, lab in ((1, np.where(labels == 3, 2, labels) - 1), (2, labels - 1), (3, labels - 1)):
        d = os.path.join(out, "iterations", f"iter_{it:03d}")
        os.makedirs(d, exist_ok=True)
        f = means[np.minimum(lab, K - 1)] * (it / 3.0) + rng.normal(0, 1.0, (n, 1024))
        u, s, _ = np.linalg.svd(f - f.mean(0), full_matrices=False)
        np.save(os.path.join(d, "features_pca.npy"), (u[:, :8] * s[:8]).astype(np.float32))
        np.save(os.path.join(d, "labels.npy"), lab.astype(np.int64))
    np.save(os.path.join(out, "features_pca.npy"), np.load(os.path.join(d, "features_pca.npy")))
    for c in range(1, K + 1):
        mrc.write_volume(os.path.join(out, "averages", f"class_{c:03d}.mrc"),
                         np.mean([vols[i] for i in np.flatnonzero(labels == c)], axis=0), VOXEL)
    post = rng.uniform(0.6, 1.0, n)
    table = StarTable({
        "rlnImageName": names, "rlnTomoName": ["tomo_a"] * n,
        "discaTomogramFile": [os.path.relpath(tomo_path, out)] * n,
        "rlnCoordinateX": [c[0] for c in centres], "rlnCoordinateY": [c[1] for c in centres],
        "rlnCoordinateZ": [c[2] for c in centres], "discaTrueClass": truth,
        "discaTrueClassName": [["sphere", "rod", "dumbbell"][t - 1] for t in truth],
        "rlnClassNumber": labels, "rlnMaxValueProbDistribution": post})
    star.write_star(os.path.join(out, "clusters.star"), table)
    sizes = [int(np.sum(labels == c)) for c in range(1, K + 1)]
    iters = [{"iteration": it, "k": k, "bic": {str(kk): 1000.0 - 50 * kk + 40 * (kk - 3) ** 2 for kk in range(2, 7)},
              "mixture": "de_novo" if it == 1 else "inherited", "ddbi": dd, "labels_changed": 0.1,
              "cluster_sizes": sizes[:k], "learning_rate": 1e-4, "label_smoothing": 0.2,
              "seconds": {"features": 1.0, "pca": 0.01, "mixture": 0.5, "train": 3.0}}
             for it, k, dd in ((1, 2, 1.4), (2, 3, 0.7), (3, 3, 0.5))]
    info = {"engine_version": "0.1.0", "preset": "fast", "settings": {}, "n_particles": n,
            "box_size": BOX, "seed": 0, "iterations": iters, "chosen_iteration": 3, "k": K,
            "ddbi": 0.5, "cluster_sizes": sizes,
            "restarts": [{"restart": 0, "seed": 0, "chosen_iteration": 3, "ddbi": 0.5}],
            "chosen_restart": 0, "seconds_total": 12.0}
    with open(os.path.join(out, "report.json"), "w") as fh:
        json.dump(info, fh)
    return out, tomo_path


def _check_png(path, min_w=200, min_h=150, min_colors=4):
    img = mpimg.imread(path)
    assert img.shape[1] >= min_w and img.shape[0] >= min_h, (path, img.shape)
    rgb = img[..., :3]
    assert rgb.std() > 0.05, f"{path} looks blank"
    distinct = len(np.unique((rgb.reshape(-1, 3) * 15).round(), axis=0))
    assert distinct >= min_colors, f"{path}: only {distinct} colours"
    return img


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from disca_engine.report import write_report
    root = str(tmp_path_factory.mktemp("fake"))
    out, tomo = build_fake_run(root)
    index = write_report(out, decoder=True, max_members=4, progress=True,
                         decoder_options={"epochs": 8, "max_steps": 40, "max_seconds": 30})
    return out, tomo, index


def test_html_is_self_contained(report):
    out, _, index = report
    assert index == os.path.join(out, "report", "index.html")
    text = open(index).read()
    assert text.count("data:image/png;base64,") >= 8  # plots, embedding, montages, re-embedding
    assert 'class="warn"' not in text, "report shows a warning on a complete folder"
    for word in ("Cluster 1", "Cluster 3", "homogeneity", "Decoder: trained", "tomo_a"):
        assert word in text


def test_pictures_exist_and_are_not_blank(report):
    rep = os.path.join(report[0], "report")
    for name in ("bic.png", "iterations.png", "sizes.png", "embedding.png", "averages.png",
                 "confusion.png", "reembed_tomo_a.png") + tuple(f"cluster_{c:03d}.png" for c in (1, 2, 3)):
        _check_png(os.path.join(rep, name))
    # three embedding panels side by side: wide picture
    emb = mpimg.imread(os.path.join(rep, "embedding.png"))
    assert emb.shape[1] > 2 * emb.shape[0]


def test_label_map_matches_tomogram(report):
    out, tomo, _ = report
    path = os.path.join(out, "report", "labelmaps", "tomo_a_labels.mrc")
    with mrcfile.open(path) as m:
        data = np.asarray(m.data)
        assert abs(float(m.voxel_size.x) - VOXEL) < 1e-3
    assert data.shape == TOMO_SHAPE
    assert set(np.unique(data).tolist()) == {0, 1, 2, 3}
    table = star.read_star(os.path.join(out, "clusters.star"))
    x, y, z = (table.column(f"rlnCoordinate{a}", int) for a in "XYZ")
    labels = table.column("rlnClassNumber", int)
    assert np.array_equal(data[z, y, x], labels)  # every pick centre carries its cluster


def test_decoded_centres(report):
    out = report[0]
    info = json.load(open(os.path.join(out, "report", "decoder.json")))
    assert info["seconds_train"] > 0 and info["epochs_run"] >= 1
    assert info["loss_last"] < info["loss_first"]
    vols = []
    for c in (1, 2, 3):
        v = mrc.read_volume(os.path.join(out, "report", "decoded", f"class_{c:03d}.mrc"))
        assert v.shape == (BOX,) * 3 and np.isfinite(v).all() and v.std() > 0
        vols.append(v)
    assert not np.allclose(vols[0], vols[1])


def test_cli_regenerates_without_decoder(report, tmp_path):
    out = report[0]
    dest = str(tmp_path / "again")
    proc = subprocess.run([sys.executable, "-m", "disca_engine", "report", out, "--no-decoder",
                           "--output", dest, "--max-members", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[report]" in proc.stdout and "ETA" not in proc.stderr
    text = open(os.path.join(dest, "index.html")).read()
    assert "Decoder disabled" in text
    assert os.path.isfile(os.path.join(dest, "labelmaps", "tomo_a_labels.mrc"))
    assert not os.path.exists(os.path.join(dest, "decoded"))


def test_cli_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "disca_engine", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "is not a finished 'disca-engine cluster' or 'predict' folder" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tomogram_override_and_missing(report, tmp_path):
    from disca_engine.report import write_report
    out, tomo, _ = report
    # missing tomogram: visible warning naming the fix, other pictures still written
    index = write_report(out, tomograms=["tomo_a=/nonexistent/t.mrc"], decoder=False,
                         output=str(tmp_path / "r1"), progress=False)
    text = open(index).read()
    assert "--tomograms tomo_a=PATH" in text
    assert os.path.isfile(tmp_path / "r1" / "averages.png")
    index = write_report(out, tomograms=[tomo], decoder=False, output=str(tmp_path / "r2"),
                         progress=False)
    assert os.path.isfile(tmp_path / "r2" / "labelmaps" / "tomo_a_labels.mrc")


@pytest.mark.skipif(os.environ.get("DISCA_SLOW_TESTS") != "1",
                    reason="integration with the real 'disca-engine cluster' takes minutes on a CPU: "
                           "set DISCA_SLOW_TESTS=1 to run it")
def test_report_of_a_real_cluster_run(tmp_path):
    """simulate -> extract -> cluster (fast preset, tiny) -> report, all with the real engine."""
    from disca_engine.report import write_report
    from disca_engine.simulate import simulate_tomograms
    tomos, truth = simulate_tomograms(str(tmp_path / "sim"), n_tomograms=1, shape=(64, 160, 160),
                                      voxel_A=14.0, classes=3, n_particles=40, snr=0.1, seed=1)
    run = [sys.executable, "-m", "disca_engine"]
    ext, clu = str(tmp_path / "ext"), str(tmp_path / "clu")
    for args in (["extract", "--tomogram", tomos[0], "--coords", truth, "--box", "24", "--output", ext],
                 ["cluster", "--input", os.path.join(ext, "particles.star"), "--output", clu,
                  "--k-range", "2:3", "--max-iterations", "2", "--threads", "2"]):
        proc = subprocess.run(run + args, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
    index = os.path.join(clu, "report", "index.html")
    assert os.path.isfile(index), "cluster must write its report"
    text = open(index).read()
    assert text.count("data:image/png;base64,") >= 7
    table = star.read_star(os.path.join(clu, "clusters.star"))
    k = len(set(table["rlnClassNumber"]))
    for c in range(1, k + 1):
        v = mrc.read_volume(os.path.join(clu, "report", "decoded", f"class_{c:03d}.mrc"))
        assert v.shape == (24, 24, 24)
    with mrcfile.open(os.path.join(clu, "report", "labelmaps", "tomo_001_labels.mrc")) as m:
        assert m.data.shape == mrc.volume_shape(tomos[0])
        assert set(np.unique(m.data).tolist()) == {0} | set(range(1, k + 1))
    _check_png(os.path.join(clu, "report", "reembed_tomo_001.png"))


def test_predict_folder(report, tmp_path):
    """A 'predict' folder (clusters.star + summary.json only) still gets montages, sizes and
    re-embedding; the decoder is skipped with a visible note."""
    import shutil
    from disca_engine.report import write_report
    out = report[0]
    pred = tmp_path / "pred"
    pred.mkdir()
    table = star.read_star(os.path.join(out, "clusters.star"))
    table.columns["rlnImageName"] = [os.path.join(out, n) for n in table["rlnImageName"]]
    table.columns["discaTomogramFile"] = [report[1]] * len(table)
    star.write_star(str(pred / "clusters.star"), table)
    with open(pred / "summary.json", "w") as fh:
        json.dump({"model": out, "n_particles": len(table), "k": K, "seconds_total": 1.0}, fh)
    index = write_report(str(pred), decoder=True, progress=False, max_members=2)
    text = open(index).read()
    assert "decoder skipped" in text and "classified with the model of" in text
    for c in (1, 2, 3):
        _check_png(str(pred / "report" / f"cluster_{c:03d}.png"))
    assert os.path.isfile(pred / "report" / "labelmaps" / "tomo_a_labels.mrc")
    assert not os.path.exists(pred / "report" / "decoded")
    shutil.rmtree(pred)


def test_members_ranked_by_distance_to_the_centre(report):
    """Montage members: closest and farthest from the cluster's mean feature (the space the
    mixture clustered), not by posterior (which is ~1.00 for nearly all members)."""
    from disca_engine.report.montage import pick_members
    from disca_engine.report.run import ClusterRun
    out = report[0]
    run = ClusterRun(out)
    rows, dist, space = run.ranked_members(2)
    assert space == "features_pca.npy"
    feats = np.load(os.path.join(out, "features_pca.npy")).astype(np.float64)
    members = np.flatnonzero(run.labels == 2)
    assert sorted(rows) == sorted(members)
    np.testing.assert_allclose(dist, np.linalg.norm(feats[rows] - feats[members].mean(0), axis=1))
    assert np.all(np.diff(dist) >= 0) and dist[-1] > dist[0]
    picked = pick_members(rows, dist, 4)
    assert [r for r, _ in picked] == [rows[0], rows[1], rows[-2], rows[-1]]
    assert [t.split("\n")[0] for _, t in picked] == ["closest 1", "closest 2", "farthest 2", "farthest 1"]
    assert picked[-1][1].endswith(f"d={dist[-1]:.2f}")
    assert len(pick_members(rows[:3], dist[:3], 6)) == 3  # small cluster: every member once
    text = open(report[2]).read()
    assert "closest to and farthest from the cluster centre" in text and "p=" not in text


def test_embedding_of_every_iteration_cached_and_browsable(report, tmp_path):
    import shutil
    from disca_engine.report import write_report
    rep = os.path.join(report[0], "report")
    for it in (1, 2, 3):
        assert os.path.isfile(os.path.join(rep, "embedding", f"iter_{it:03d}.npz"))
        _check_png(os.path.join(rep, "embedding", f"iter_{it:03d}.png"))
    text = open(report[2]).read()
    assert text.count('class="frame"') == 3 and 'type="range"' in text
    assert "iteration 3 (chosen)" in text
    # a re-run reuses every cached embedding; a changed features file is recomputed
    copy = shutil.copytree(report[0], str(tmp_path / "run"))
    again = open(write_report(copy, decoder=False, progress=False)).read()
    assert "this run computed 0, reused 3" in again
    feats = os.path.join(copy, "iterations", "iter_002", "features_pca.npy")
    np.save(feats, np.load(feats) * 2)
    again = open(write_report(copy, decoder=False, progress=False)).read()
    assert "this run computed 1, reused 2" in again


def test_title_names_the_run_and_its_input(report, tmp_path):
    import shutil
    from disca_engine.report import write_report
    n = K * PER_CLASS
    assert f"DISCA clustering of {n} subtomograms from" in open(report[2]).read()
    copy = shutil.copytree(report[0], str(tmp_path / "run"))
    text = open(write_report(copy, decoder=False, progress=False, name="ribosome run",
                             input_label="subtomograms of extraction 7")).read()
    title = f"ribosome run: DISCA clustering of {n} subtomograms from subtomograms of extraction 7"
    assert f"<title>{title}</title>" in text
    # a later re-run (e.g. `disca-engine report DIR`) keeps the name
    assert f"<title>{title}</title>" in open(write_report(copy, decoder=False, progress=False)).read()


def test_decoder_budget_grows_with_n_and_loss_curve_is_shown(report):
    from disca_engine.report.decoder import budget
    assert budget(100, 32) == (400, 60.0)
    steps, seconds = budget(2000, 32)
    assert steps == 20 * 63 and seconds == pytest.approx(300.0)  # 60 s / 400 steps was too short
    assert budget(100000, 32)[1] == 900.0
    rep = os.path.join(report[0], "report")
    info = json.load(open(os.path.join(rep, "decoder.json")))
    curve = info["loss_curve"]
    assert len(curve["steps"]) == len(curve["loss"]) == info["epochs_run"]
    assert curve["steps"] == sorted(curve["steps"]) and curve["steps"][-1] == info["steps"]
    assert info["stopped_by"] in ("epochs", "steps", "time")
    _check_png(os.path.join(rep, "decoder_loss.png"), min_colors=3)
    assert "decoder_loss.png" in open(report[2]).read()


def test_each_preset_explains_how_its_own_run_found_k():
    """auto: the stages with this run's numbers (merges, relabel, junk split), no BIC;
    fast: BIC over its K candidates."""
    from disca_engine.report import k_steps
    history = [{"mask": True, "diameter_voxels": 13.8, "diameter_A": 193.0, "crop": 22},
               {"round": 1, "k": 6, "changed": 0.5, "sizes": [5] * 6},
               {"merge_test": True, "merges": [[0, 2, 1.5]],
                "pairs": [{"pair": [1, 2], "agreement": 0.3, "z": 20.0},
                          {"pair": [1, 3], "agreement": 0.9, "z": 1.5},
                          {"pair": [2, 3], "agreement": 0.2, "z": 30.0}]},
               {"relabel": True, "k": 2, "changed": 0.125, "passes": 3, "sizes": [10, 8]},
               {"junk_split": True, "k": 3, "splits": [{"class": 1}], "sizes": [9, 8, 1]}]
    auto = {"preset": "auto", "k": 3, "iterations": [{"classification": history}],
            "settings": {"classification": {"merge_test": {"threshold": 0.8, "evidence": 4.0,
                                                           "veto_ratio": 0.85, "veto_z": 6.0}}}}
    text = k_steps.section(auto)
    assert "BIC" not in text.replace("without BIC", "")
    assert "K = 3 -&gt; 2: 1+3 (agreement 0.90, z 1.5; by held-out z)" in text
    assert "moved 12.5% of the boxes in 3 pass(es)" in text and "1 class(es) split" in text
    assert "other/own score &lt; 0.85 with z &gt;= 6.0" in text
    fast = k_steps.section({"preset": "fast", "k": 5, "chosen_iteration": 3,
                            "settings": {"k_range": [5, 10, 20]}, "iterations": [{}]})
    assert "lowest BIC" in fast and "5, 10, 20" in fast and "merge test" not in fast


def test_the_summary_says_how_the_rest_was_classified():
    """A run above its subsample: the summary names the subsample, how many of the others
    went to the network and to the alignment, and their agreement; a run without one adds
    nothing."""
    from disca_engine.report import rest_rows
    assert rest_rows(None) == []
    rows = dict(rest_rows({"subsample": 2000, "rest": 18000, "by": "network", "unsure": 0.999,
                           "by_network": 13729, "by_alignment": 4271, "agreement": 0.328,
                           "seconds": {"network": 55.0, "alignment": 56.45}}))
    assert rows["classes found and learnt on"] == "a random subsample of 2000"
    assert rows["the other 18000"].startswith("13729 by the network, 4271 by alignment")
    assert "under 0.999" in rows["the other 18000"] and "32.8%" in rows["the other 18000"]
    assert "56.45 s" in rows["their classification time"]
    everything = dict(rest_rows({"subsample": 500, "rest": 1500, "by": "alignment",
                                 "unsure": 0.999, "by_network": 0, "by_alignment": 1500,
                                 "agreement": None, "seconds": {}}))
    assert "under" not in everything["the other 1500"] and "agree" not in everything["the other 1500"]
