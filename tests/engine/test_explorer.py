"""The report's interactive embedding (issue 24): its data in the page, the selection file
and ``disca-engine subset``, and a lasso drawn by real pointer events in headless Chromium
whose selection must equal the points inside the polygon computed here."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from disca_engine import cli, contract, selection
from disca_engine.io import star
from test_report import build_fake_run

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
    + os.environ.get("PYTHONPATH", "").split(os.pathsep))}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(run folder, index.html, the page's explorer data) of a fake run with descriptors."""
    from disca_engine.report import write_report
    out, _ = build_fake_run(str(tmp_path_factory.mktemp("explorer")))
    n = len(star.read_particles(os.path.join(out, "clusters.star")))
    rng = np.random.default_rng(3)
    np.save(os.path.join(out, "iterations", contract.DESCRIPTORS),
            rng.normal(0, 1, (n, 6)).astype(np.float32))
    index = write_report(out, decoder=False, max_members=2, progress=False)
    with open(index, encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', text, re.S)
    return out, index, json.loads(m.group(1))


def test_page_holds_both_embeddings_and_pictures(page):
    out, _, data = page
    n = len(star.read_particles(os.path.join(out, "clusters.star")))
    assert [s["key"] for s in data["spaces"]] == ["features", "descriptors"]
    for s in data["spaces"]:
        xy = np.array(s["xy"]).reshape(-1, 2)
        assert xy.shape == (n, 2) and xy.min() == 0.0 and xy.max() == 1.0
    a, b = (np.array(s["xy"]) for s in data["spaces"])
    assert not np.allclose(a, b)  # two different embeddings, not one drawn twice
    assert data["rows"] == list(range(1, n + 1)) and len(data["thumbs"]) == n
    assert all(u.startswith("data:image/png;base64,") for u in data["thumbs"].values())
    assert set(data["cls"]) == {1, 2, 3} and len(data["post"]) == n
    assert os.path.isfile(os.path.join(out, "report", "embedding", "explorer_descriptors.npz"))


def test_thumbnail_is_a_png_of_three_slices():
    import base64
    import io
    import matplotlib.image as mpimg
    from disca_engine.report.thumbnails import data_uri
    vol = np.zeros((16, 16, 16), np.float32)
    vol[8, 4:12, 4:12] = -1  # a dark plate in the central xy plane
    img = mpimg.imread(io.BytesIO(base64.b64decode(data_uri(vol).split(",", 1)[1])), format="png")
    assert img.shape == (16, 16 * 3 + 2)
    assert img[4:12, 4:12].max() < 0.1 and img[0, 0] > 0.9  # the plate dark, the rest light


def _selection_file(tmp_path, out, rows):
    table = star.read_particles(os.path.join(out, "clusters.star"))
    text = selection.format_selection(
        [r + 1 for r in rows], [table["rlnImageName"][r] for r in rows], [""] * len(rows),
        [table["rlnClassNumber"][r] for r in rows], os.path.join(out, "clusters.star"), "test")
    path = tmp_path / "sel.tsv"
    path.write_text(text)
    return str(path), table


def test_subset_writes_the_selected_rows(page, tmp_path):
    out, _, _ = page
    path, table = _selection_file(tmp_path, out, [7, 2, 30])
    target = str(tmp_path / "selected.star")
    with pytest.raises(SystemExit) as exc:
        cli.main(["subset", "--clusters", out, "--selection", path, "--output", target])
    assert exc.value.code == 0
    got = star.read_particles(target)
    assert got["rlnImageName"] == [table["rlnImageName"][r] for r in (2, 7, 30)]
    assert got.columns.keys() == table.columns.keys()


@pytest.mark.parametrize("content, message", [
    ("hello\n", "is not a DISCA selection file"),
    (selection.TITLE + "\nrow\trlnImageName\n", "selects no subtomogram"),
    ("row\trlnImageName\nx\ta.mrc\n", "line 2: expected a row number"),
    ("row\trlnImageName\n3\tother.mrc\n", "the selection was made on another run"),
    ("row\trlnImageName\n999\tother.mrc\n", "has 42 rows"),
])
def test_subset_refuses_bad_selections_in_one_line(page, tmp_path, content, message):
    out, _, _ = page
    sel = tmp_path / "bad.tsv"
    sel.write_text(content)
    r = subprocess.run([sys.executable, "-m", "disca_engine", "subset", "--clusters", out,
                        "--selection", str(sel), "--output", str(tmp_path / "o.star")],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.star").exists()


def _inside(poly, pts):
    """Even-odd point-in-polygon, vectorised (independent of the page's JavaScript)."""
    poly = np.asarray(poly, float)
    x, y = pts[:, 0][:, None], pts[:, 1][:, None]
    a, b = poly, np.roll(poly, 1, axis=0)
    cross = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = (b[:, 0] - a[:, 0]) * (y - a[:, 1]) / (b[:, 1] - a[:, 1]) + a[:, 0]
    return (np.sum(cross & (x < xi), axis=1) % 2) == 1


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _dump(index, fragment, tmp_path):
    r = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                        "--dump-dom", "file://" + index + fragment],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="explorer-selftest" hidden="">(.*?)</pre>', r.stdout, re.S)
    assert m, f"no selftest output in the page (rc {r.returncode}): {r.stderr[-800:]}"
    import html
    return html.unescape(m.group(1))


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium (chromium) installed")
@pytest.mark.parametrize("space", ["features", "descriptors"])
def test_lasso_in_a_real_browser_selects_the_points_inside(page, tmp_path, space):
    out, index, data = page
    k = [s["key"] for s in data["spaces"]].index(space)
    xy = np.array(data["spaces"][k]["xy"]).reshape(-1, 2)
    # an irregular pentagon around the centre; vertices avoid the points themselves
    poly = [(0.12, 0.18), (0.81, 0.11), (0.93, 0.62), (0.47, 0.91), (0.08, 0.57)]
    expected = np.flatnonzero(_inside(poly, xy))
    assert 0 < len(expected) < len(xy)  # the polygon leaves points on both sides
    frag = "#selftest=lasso:" + ";".join(f"{u},{v}" for u, v in poly) + f"&space={space}"
    text = _dump(index, frag, tmp_path)
    assert not text.startswith("selftest error"), text
    sel_path = tmp_path / "sel.tsv"
    sel_path.write_text(text)
    got = selection.read_selection(str(sel_path))
    assert got.rows == sorted(data["rows"][i] for i in expected)
    assert f"lasso on {data['spaces'][k]['label']}" in text
    target = str(tmp_path / "selected.star")
    with pytest.raises(SystemExit) as exc:
        cli.main(["subset", "--clusters", out, "--selection", str(sel_path), "--output", target])
    assert exc.value.code == 0
    table = star.read_particles(os.path.join(out, "clusters.star"))
    assert star.read_particles(target)["rlnImageName"] == [
        table["rlnImageName"][data["rows"][i] - 1] for i in sorted(expected)]


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium (chromium) installed")
def test_box_in_a_real_browser(page, tmp_path):
    _, index, data = page
    xy = np.array(data["spaces"][0]["xy"]).reshape(-1, 2)
    lo, hi = (0.2, 0.3), (0.7, 0.95)
    expected = np.flatnonzero((xy[:, 0] > lo[0]) & (xy[:, 0] < hi[0]) &
                              (xy[:, 1] > lo[1]) & (xy[:, 1] < hi[1]))
    assert 0 < len(expected) < len(xy)
    text = _dump(index, f"#selftest=box:{lo[0]},{lo[1]};{hi[0]},{hi[1]}", tmp_path)
    sel_path = tmp_path / "sel.tsv"
    sel_path.write_text(text)
    assert selection.read_selection(str(sel_path)).rows == sorted(data["rows"][i] for i in expected)


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium (chromium) installed")
def test_hover_shows_the_slices_and_scores_of_the_point(page, tmp_path):
    _, index, data = page
    i = 5
    text = _dump(index, f"#selftest=hover:{i}", tmp_path)
    shown, tip = text.split("|", 1)
    assert shown == "block"
    assert data["thumbs"][str(i)] in tip  # this point's own picture, not a neighbour's
    assert f"cluster <b>{data['cls'][i]}</b>" in tip and f"row {data['rows'][i]}" in tip
    assert f"posterior {data['post'][i]:.3f}" in tip
    assert os.path.basename(data["names"][i]) in tip


def test_subsample_and_pictures_are_capped_deterministically_and_said(page, tmp_path, monkeypatch):
    from disca_engine.report import explorer, explorer_page, plots
    from disca_engine.report.run import ClusterRun
    out, _, _ = page
    monkeypatch.setattr(explorer, "MAX_THUMBNAILS", 8)
    run = ClusterRun(out)
    colors = plots.cluster_colors(run.k)
    a = explorer.explorer_data(run, str(tmp_path / "a"), colors, max_points=20, seed=4)
    b = explorer.explorer_data(run, str(tmp_path / "b"), colors, max_points=20, seed=4)
    assert len(a["rows"]) == 20 and a["rows"] == b["rows"] and a["rows"] == sorted(a["rows"])
    assert len(a["thumbs"]) == 8 and a["thumbs"].keys() == b["thumbs"].keys()
    assert a["spaces"][0]["xy"] == b["spaces"][0]["xy"]
    text = explorer_page.section(a)
    assert "20 of 42 subtomograms (a seeded random subsample" in text
    assert "8 of the points (a seeded random subset" in text


def test_subset_refuses_a_missing_run_and_an_existing_output(page, tmp_path):
    out, _, _ = page
    path, _ = _selection_file(tmp_path, out, [1])
    (tmp_path / "o.star").write_text("mine")
    for clusters, target, message in ((str(tmp_path / "nowhere"), "new.star", "STAR file not found"),
                                      (out, "o.star", "exists: give --overwrite")):
        r = subprocess.run([sys.executable, "-m", "disca_engine", "subset", "--clusters", clusters,
                            "--selection", path, "--output", str(tmp_path / target)],
                           capture_output=True, text=True, env=ENV)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "o.star").read_text() == "mine" and not (tmp_path / "new.star").exists()


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium (chromium) installed")
def test_clicking_a_legend_entry_selects_that_cluster(page, tmp_path):
    _, index, data = page
    text = _dump(index, "#selftest=legend:2", tmp_path)
    sel_path = tmp_path / "sel.tsv"
    sel_path.write_text(text)
    got = selection.read_selection(str(sel_path))
    assert got.rows == [r for r, c in zip(data["rows"], data["cls"]) if c == 2]
    assert set(got.classes) == {"2"} and "cluster 2:" in text
