"""The particle mask (its radius from the data, the cropped view of the boxes) and the merge
test's held-out evidence (``align.evidence``): one structure split in two shows none, two
structures show plenty, and the merge test joins a structure split across classes."""
import contextlib
import dataclasses
import io

import numpy as np
import pytest

from disca_engine import settings as S
from disca_engine.clustering.align import evidence as E
from disca_engine.clustering.align.averages import class_references
from disca_engine.clustering.align.fourier import soft_sphere
from disca_engine.clustering.align.mask import MaskedView, crop_size, estimate_radius
from disca_engine.clustering.align.rotations import rotation_grid
from disca_engine.clustering.dataset import load_particles
from disca_engine.clustering.stages import mask as mask_stage
from disca_engine.errors import EngineError

from test_alignment import AlignedStack, _classify, _simulated, _Stack

REAL = "tests/data/real/empiar10499_ribosomes/particles.star"


def test_soft_sphere_is_one_inside_and_falls_to_zero_at_its_outer_radius():
    m = soft_sphere(24, outer=8.0, width=3.0)
    c = 11.5                                            # the box centre, (s - 1) / 2
    assert m.max() == 1.0 and m[12, 12, 12] == 1.0 and m[0, 0, 0] == 0.0
    ax = np.arange(24) - c
    assert m[12, 12, int(round(c + 4.9))] == 1.0       # within outer - width of the centre
    assert m[12, 12, int(round(c + 8.6))] == 0.0       # beyond outer
    default = soft_sphere(24)                           # the box's own sphere, as before
    r = np.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    expect = np.clip(0.5 + 0.5 * np.cos(np.pi * np.clip(r - 9, 0, 2) / 2), 0, 1)
    np.testing.assert_allclose(default, expect, atol=1e-6)


def test_the_view_crops_about_the_centre_voxel_and_masks():
    vols = np.zeros((2, 24, 24, 24), np.float32)
    vols[:, 12, 12, 12] = 5.0                    # the extraction centre, index box // 2
    vols[:, 0, 0, 0] = 7.0                       # a neighbour in the corner
    view = MaskedView(_Stack(vols), 5.0)
    assert view.box == crop_size(24, 5.0) == 18 and view.box % 2 == 0
    out = next(view.iter_batches(None, 2))
    assert out.shape == (2, 18, 18, 18)
    assert out[0, 9, 9, 9] == pytest.approx(5.0) and out.sum() == pytest.approx(10.0)
    assert crop_size(31, 5.0) % 2 == 1 and crop_size(16, 9.0) == 16   # parity; never larger


def test_radius_from_the_data_follows_the_particle():
    """Simulated rings (r95 4.6 voxels), dumbbells (6.1) and ribosomes (9.0, more than a
    24-voxel box's mask holds): the estimate covers each one's r95 with at most 3 voxels to
    spare, and is capped by the box; on the 40 real 70S ribosomes it is their known size
    (about 250 A)."""
    ring = estimate_radius(_Stack(_simulated(["ring"], 30, 0.1, 60)[0]))
    dumbbell = estimate_radius(_Stack(_simulated(["dumbbell"], 30, 0.1, 60)[0]))
    ribosome = estimate_radius(_Stack(_simulated(["ribosome"], 30, 0.1, 60)[0]))
    assert 4.6 <= ring <= 7.6 and 6.1 <= dumbbell <= 9.1
    assert ribosome == pytest.approx(24 / 2 - 3 - 1) and ribosome > ring
    with contextlib.redirect_stdout(io.StringIO()):
        real = load_particles(REAL, progress=False)
    diameter = 2 * estimate_radius(real) * real.voxel_size
    assert 220 <= diameter <= 280


def test_mask_stage_uses_a_given_diameter_and_refuses_nonsense():
    data, _ = _simulated(["ring"], 6, 1.0, 60)
    parts = _Stack(data)
    parts.voxel_size = 14.0
    lines = []
    view = mask_stage.apply(parts, S.ParticleMask(diameter_A=140.0), lines.append)
    assert view.radius == pytest.approx(5.0) and "diameter 10.0 voxels (140 A), given" in lines[0]
    big = mask_stage.apply(parts, S.ParticleMask(diameter_A=1000.0), lines.append)
    assert big.radius == pytest.approx(24 / 2 - 3 - 1) and "capped" in lines[-1]
    with pytest.raises(EngineError, match="under 4 voxels"):
        mask_stage.apply(parts, S.ParticleMask(diameter_A=30.0), lines.append)
    parts.voxel_size = None
    with pytest.raises(EngineError, match="voxel size is unknown"):
        mask_stage.apply(parts, S.ParticleMask(diameter_A=140.0), lines.append)
    view = mask_stage.apply(parts, S.ParticleMask(), lines.append)   # estimated, in voxels
    assert "estimated from the data" in lines[-1] and view.box <= 24


def test_particle_diameter_is_a_setting_of_the_default_only():
    assert S.resolve("auto", particle_diameter_A=250).method.classification.mask.diameter_A == 250
    assert S.resolve("auto").method.classification.mask.diameter_A is None
    with pytest.raises(EngineError, match="--particle-diameter-A -5"):
        S.resolve("auto", particle_diameter_A=-5)
    with pytest.raises(EngineError, match="fast preset has no classification"):
        S.resolve("fast", particle_diameter_A=250)


def _classes(names, n, snr, labels_of):
    data, truth = _simulated(names, n, snr, 60)
    stack = AlignedStack(_Stack(data), workers=1)
    grid = rotation_grid(300)
    labels = labels_of(truth)
    z = np.zeros((len(data), 2), np.float32)
    refs, halves, rot, shift = class_references(stack, labels, z, grid)
    return stack, grid, labels, halves, rot, shift


def test_held_out_evidence_is_none_for_one_structure_and_large_for_two():
    rng = np.random.default_rng(0)
    stack, grid, labels, halves, rot, shift = _classes(
        ["ribosome", "rod"], 20, 0.3, lambda t: t)
    ev = E.evidence_matrix(E.half_scores(stack, grid, halves), labels)
    assert ev[0, 1, 0] > 6 and ev[0, 1, 2] < 0.9             # z, and other/own score
    nulls = [E.split_evidence(stack, grid, np.flatnonzero(labels == 0), rot, shift, rng)
             for _ in range(3)]
    assert all(abs(z) < 3 for z, _, _ in nulls), nulls
    assert all(0.85 < r < 1.15 for _, _, r in nulls)


def test_half_parts_alternate_members_within_each_class():
    labels = np.array([0, 1, 0, 0, 1, 1, 0])
    assert E.half_parts(labels).tolist() == [0, 0, 1, 0, 1, 0, 1]


def test_merge_test_joins_one_structure_split_across_two_classes():
    """A ribosome's boxes seeded as two classes beside a rod's: the merge test joins the
    two ribosome classes, keeps the rod apart, and logs the evidence of the final pair."""
    data, truth = _simulated(["ribosome", "rod"], 16, 0.3, 60)
    seeds = np.where(truth == 0, np.arange(len(truth)) % 2, 2)
    lines = []
    labels, history = _classify(data, seeds, np.zeros((len(data), 2), np.float32), lines.append,
                                alignment={"rotations": 300}, relabel=False, junk_split=False)
    from sklearn.metrics import adjusted_rand_score
    assert labels.max() == 1 and adjusted_rand_score(truth, labels) == 1.0
    assert any("merge test: 1 pair(s) merge" in line for line in lines)
    final = [line for line in lines if "classes 1-2:" in line]
    assert len(final) == 1 and "different" in final[0]
    assert any("final_pairs" in h for h in history)


def test_agreement_does_not_merge_what_held_out_members_clearly_tell_apart():
    """Three pairs that agree (0.85): one whose members score 0.80 of their own on the other
    class with z 9 stays apart (vetoed); one at 0.95 with z 9 (a one-structure split) and
    one at 0.80 with z 5 (not clear enough) merge; with veto_ratio 0 all three do."""
    from disca_engine.clustering.stages.merge_test import alike, mergeable
    mt = S.resolve("auto").method.classification.merge_test
    ratio = np.full((6, 6), 0.2)
    ev = np.zeros((6, 6, 3))
    ev[..., 0], ev[..., 2] = 30.0, 0.5          # every other pair: clearly different
    for (i, j), z, held in (((0, 1), 9.0, 0.80), ((2, 3), 9.0, 0.95), ((4, 5), 5.0, 0.80)):
        for a, b in ((i, j), (j, i)):
            ratio[a, b], ev[a, b] = 0.85, (z, 0.1, held)
    assert [p[:2] for p in mergeable(ratio, ev, mt)] in ([(2, 3), (4, 5)], [(4, 5), (2, 3)])
    assert not alike(ratio, ev, mt)[0, 1] and alike(ratio, ev, mt)[2, 3]
    off = dataclasses.replace(mt, veto_ratio=0.0)
    assert sorted(p[:2] for p in mergeable(ratio, ev, off)) == [(0, 1), (2, 3), (4, 5)]
