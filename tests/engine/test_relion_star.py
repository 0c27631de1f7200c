"""Particles STAR files as RELION 3.1, 4 and 5 write them: project-relative image names,
data_general/data_optics blocks kept in the output, and the K-range contract."""
import os

import numpy as np
import pytest

from disca_engine import contract
from disca_engine.clustering.dataset import load_particles, peek_particles
from disca_engine.clustering.outputs import clusters_table
from disca_engine.errors import EngineError
from disca_engine.io.jsonfile import write_json
from disca_engine.io.mrc import write_volume
from disca_engine.io.star import read_blocks, read_particles, read_star, write_star

OPTICS = """
data_optics

loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2
_rlnSphericalAberration #3
_rlnVoltage #4
_rlnImagePixelSize #5
_rlnImageSize #6
_rlnImageDimensionality #7
1 opticsGroup1 2.700000 300.000000 10.000000 13 3
"""

# RELION 3.1 (subtomogram averaging of 3.1), 4 and 5 particle files, project-relative names
FORMATS = {
    "relion31": ("# version 30001\n" + OPTICS + """
# version 30001

data_particles

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnCoordinateZ #3
_rlnImageName #4
_rlnMicrographName #5
_rlnOpticsGroup #6
""", "{x} 20.0 30.0 {name} TS_01.mrc 1"),
    "relion4": ("""
# version 30001

data_general

_rlnTomoSubTomosAre2DStacks                       0


# version 30001
""" + OPTICS + """
# version 30001

data_particles

loop_
_rlnTomoName #1
_rlnTomoParticleId #2
_rlnCoordinateX #3
_rlnCoordinateY #4
_rlnCoordinateZ #5
_rlnImageName #6
_rlnOpticsGroup #7
""", "TS_01 {i} {x} 20.0 30.0 {name} 1"),
    "relion5": ("""
# version 50001

data_general

_rlnTomoSubTomosAre2DStacks                       0


# version 50001
""" + OPTICS + """
# version 50001

data_particles

loop_
_rlnTomoName #1
_rlnTomoParticleName #2
_rlnCenteredCoordinateXAngst #3
_rlnCenteredCoordinateYAngst #4
_rlnCenteredCoordinateZAngst #5
_rlnAngleRot #6
_rlnImageName #7
_rlnOpticsGroup #8
""", "TS_01 TS_01/{i} {x} -10.5 3.25 0.0 {name} 1"),
}


def relion_project(root, fmt, n=6, box=13):
    """A RELION project: subtomograms under Extract/job010/, the STAR in Select/job020/."""
    rng = np.random.default_rng(0)
    sub = os.path.join(root, "Extract", "job010", "Subtomograms", "TS_01")
    os.makedirs(sub)
    header, row = FORMATS[fmt]
    rows = []
    for i in range(n):
        name = f"Extract/job010/Subtomograms/TS_01/{i + 1}_data.mrc"
        write_volume(os.path.join(root, name), rng.standard_normal((box,) * 3).astype(np.float32), 10.0)
        rows.append(row.format(i=i + 1, x=10.0 + i, name=name))
    job = os.path.join(root, "Select", "job020")
    os.makedirs(job)
    star = os.path.join(job, "particles.star")
    with open(star, "w") as fh:
        fh.write(header + "\n".join(rows) + "\n\n")
    return star


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_relion_files_load_and_keep_every_block(tmp_path, fmt, monkeypatch):
    star = relion_project(str(tmp_path / "project"), fmt)
    monkeypatch.chdir(tmp_path)  # not the project folder: names are found by walking up
    ps = load_particles(star, progress=False)
    assert ps.n == 6 and ps.box == 13
    labels = np.array([0, 1, 0, 1, 1, 0])
    out = str(tmp_path / "clusters.star")
    write_star(out, clusters_table(ps.table, labels, np.full(6, 0.9), star), blocks=read_blocks(star))
    names_in = [n for n, _ in read_blocks(star)]
    names_out = [n for n, _ in read_blocks(out)]
    assert names_out == names_in  # data_general (4, 5), data_optics and data_particles
    optics_in = read_star(star, "optics")
    optics_out = read_star(out, "optics")
    assert optics_out.columns == optics_in.columns
    text_out = open(out).read()
    if fmt != "relion31":
        assert "_rlnTomoSubTomosAre2DStacks" in text_out
    parts_in, parts_out = read_star(star, "particles"), read_star(out, "particles")
    for key in parts_in.columns:  # every input column, in input order, then the class columns
        if key != "rlnImageName":
            assert parts_out[key] == parts_in[key]
    assert list(parts_out.columns)[:len(parts_in.columns)] == list(parts_in.columns)
    assert parts_out["rlnClassNumber"] == ["1", "2", "1", "2", "2", "1"]
    assert read_particles(out).columns == parts_out.columns  # what report and the plugin read
    for name in parts_out["rlnImageName"]:
        assert os.path.isabs(name) and os.path.isfile(name)


def test_missing_relative_image_names_what_was_tried(tmp_path, monkeypatch):
    star = relion_project(str(tmp_path / "project"), "relion4")
    os.remove(str(tmp_path / "project" / "Extract" / "job010" / "Subtomograms" / "TS_01" / "3_data.mrc"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EngineError) as err:
        peek_particles(star)
    msg = str(err.value)
    assert "row 3" in msg and "3_data.mrc" in msg and "tried" in msg
    assert os.path.join("Select", "job020", "Extract") in msg  # the STAR's folder was tried


def test_k_range_contract_parses_and_formats_one_syntax():
    assert contract.parse_k_range("2:5") == [2, 3, 4, 5]
    assert contract.parse_k_range("5,10,20") == [5, 10, 20]
    assert contract.format_k_range([2, 3, 4, 5]) == "2:5"
    assert contract.format_k_range([5, 10, 20]) == "5,10,20"
    for text, canonical in (("2:5", "2:5"), ("5,10,20", "5,10,20"), ("2,3", "2:3"), ("7", "7"),
                            ("4,2,3", "2:4")):
        assert contract.format_k_range(contract.parse_k_range(text)) == canonical
    for bad, why in (("1", "at least 2"), ("5:2", "larger than MAX"), ("3-5", "not 'MIN:MAX'"),
                     ("5 10 20", "not 'MIN:MAX'"), ("", "empty")):
        with pytest.raises(EngineError, match=why):
            contract.parse_k_range(bad)


def test_json_files_are_strict(tmp_path):
    import json
    path = str(tmp_path / "r.json")
    write_json(path, {"ddbi": float("inf"), "x": [1.0, float("nan")], "ok": 2.5})
    text = open(path).read()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"ddbi": None, "x": [1.0, None], "ok": 2.5}


def test_rules_the_protocols_ask_the_engine():
    from disca_engine import settings as S
    from disca_engine.picking.pipeline import MIN_SIGMA_VOXELS, SIGMA_PER_RADIUS, make_params
    assert S.smallest_box("paper") == 21 and S.smallest_box() == 21
    assert S.smallest_box("fast") == 13
    for name in contract.PRESETS:
        need = S.smallest_box(name)
        S.check_box(S.PRESETS[name], need)
        with pytest.raises(EngineError):
            S.check_box(S.PRESETS[name], need - 1)
    # below this diameter (voxels) the DoG width is held at its minimum
    from disca_engine.picking.pipeline import smallest_resolved_diameter_vox
    d = smallest_resolved_diameter_vox()
    assert make_params(1.0, d * 1.01).sigma1_vox > MIN_SIGMA_VOXELS
    assert make_params(1.0, d * 0.99).sigma1_vox == MIN_SIGMA_VOXELS
    assert d == pytest.approx(2 * MIN_SIGMA_VOXELS / SIGMA_PER_RADIUS)
