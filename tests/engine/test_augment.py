import numpy as np
import pytest
from scipy import ndimage

from disca_engine.clustering.augment import random_rotation_matrices, rotate_volumes

S = 12


def smooth_volumes(b, s=S, seed=0):
    rng = np.random.default_rng(seed)
    v = ndimage.gaussian_filter(rng.standard_normal((b, s, s, s)), (0, 1.5, 1.5, 1.5))
    return ((v - v.mean()) / v.std()).astype(np.float32)


def interior(s=S, radius=None):
    c = (s - 1) / 2
    z, y, x = np.meshgrid(*(np.arange(s) - c,) * 3, indexing="ij")
    return np.sqrt(x * x + y * y + z * z) <= (radius if radius is not None else c)


def rot_z(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def test_matrices_are_rotations_and_uniform():
    rng = np.random.default_rng(0)
    r = random_rotation_matrices(20000, rng)
    assert r.shape == (20000, 3, 3)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    ez = r[:, :, 2]                                     # R @ e_z
    assert np.abs(ez.mean(axis=0)).max() < 0.03         # uniform directions average to 0
    # uniform on the sphere: z-component uniform on [-1, 1] (Archimedes), var 1/3
    assert abs(ez[:, 2].var() - 1 / 3) < 0.01
    hist, _ = np.histogram(ez[:, 2], bins=4, range=(-1, 1))
    assert hist.min() > 0.9 * hist.max()
    # rotation angle density of Haar measure: (1 - cos w) / pi -> mean angle pi/2 + 2/pi
    angle = np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1))
    assert abs(angle.mean() - (np.pi / 2 + 2 / np.pi)) < 0.02


def test_identity_returns_input():
    v = smooth_volumes(3)
    out = rotate_volumes(v, np.tile(np.eye(3), (3, 1, 1)), np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == v.shape
    np.testing.assert_allclose(out, v, atol=1e-6)       # the whole box is inside for identity


@pytest.mark.parametrize("order", [0, 1])
def test_90_degrees_about_z_is_rot90(order):
    v = smooth_volumes(2, seed=1)
    rng = np.random.default_rng(0)
    out = rotate_volumes(v, np.stack([rot_z(90), rot_z(-90)]), rng, order=order)
    # content rotated by +90 deg in the (x, y) plane; arrays are [z, y, x]
    np.testing.assert_allclose(out[0], np.rot90(v[0], 1, axes=(2, 1)), atol=1e-5)
    np.testing.assert_allclose(out[1], np.rot90(v[1], 1, axes=(1, 2)), atol=1e-5)


def test_matches_scipy_trilinear_in_interior():
    v = smooth_volumes(4, seed=2)
    rng = np.random.default_rng(3)
    r = random_rotation_matrices(4, rng)
    out = rotate_volumes(v, r, rng)
    swap = np.eye(3)[::-1]                              # (x, y, z) <-> (z, y, x)
    c = np.full(3, (S - 1) / 2)
    mask = interior(radius=(S - 1) / 2 - 0.01)
    for b in range(4):
        m = swap @ r[b].T @ swap
        ref = ndimage.affine_transform(v[b], m, offset=c - m @ c, order=1)
        np.testing.assert_allclose(out[b][mask], ref[mask], atol=1e-5)


def test_corners_are_fresh_noise_not_zeros():
    rng = np.random.default_rng(4)
    v = smooth_volumes(64, s=16, seed=4)
    r = random_rotation_matrices(64, rng)
    out = rotate_volumes(v, r, rng)
    assert np.count_nonzero(out == 0) == 0
    # source outside the box for (at least) the voxels beyond the inscribed... corner voxels
    corner = ~interior(16, radius=7.5 * np.sqrt(3) * 0.97)
    vals = out[:, corner]
    assert vals.size > 500
    assert abs(vals.mean()) < 0.1 and abs(vals.std() - 1) < 0.1
    # white: neighbouring corner voxels are uncorrelated (the smooth input is not)
    a, b = out[:, 0, 0, 0], out[:, 0, 0, 1]
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.35
    # but the 180 degree rotation of a box maps corners inside: no noise there, only values
    flip = rotate_volumes(v[:1], rot_z(180)[None], rng)
    np.testing.assert_allclose(flip[0], v[0][:, ::-1, ::-1], atol=1e-5)


def test_reproducible_with_seed_and_batch_independent():
    v = smooth_volumes(5, seed=5)
    a = rotate_volumes(v, random_rotation_matrices(5, np.random.default_rng(7)), np.random.default_rng(8))
    b = rotate_volumes(v, random_rotation_matrices(5, np.random.default_rng(7)), np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    c = rotate_volumes(v, random_rotation_matrices(5, np.random.default_rng(7)), np.random.default_rng(9))
    assert not np.array_equal(a, c)


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        rotate_volumes(np.zeros((2, 4, 4, 5)), np.tile(np.eye(3), (2, 1, 1)), rng)
    with pytest.raises(ValueError):
        rotate_volumes(np.zeros((2, 4, 4, 4)), np.tile(np.eye(3), (3, 1, 1)), rng)
    with pytest.raises(ValueError):
        rotate_volumes(np.zeros((1, 4, 4, 4)), np.eye(3)[None], rng, order=3)


def test_large_batch_chunks_consistently():
    # more volumes than one internal chunk: each is still rotated by its own matrix
    rng = np.random.default_rng(10)
    v = smooth_volumes(40, s=24, seed=10)
    r = random_rotation_matrices(40, rng)
    full = rotate_volumes(v, r, np.random.default_rng(1))
    mask = interior(24, radius=11.4)
    for b in (0, 17, 39):
        one = rotate_volumes(v[b:b + 1], r[b:b + 1], np.random.default_rng(1))
        np.testing.assert_allclose(full[b][mask], one[0][mask], atol=1e-6)


def test_threads_give_identical_result():
    v = smooth_volumes(30, s=16, seed=11)
    r = random_rotation_matrices(30, np.random.default_rng(12))
    one = rotate_volumes(v, r, np.random.default_rng(13), workers=1)
    two = rotate_volumes(v, r, np.random.default_rng(13), workers=2)
    np.testing.assert_array_equal(one, two)
