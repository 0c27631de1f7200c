"""The alignment scans on their two array backends (``align.backend``): jax.numpy on the CPU
gives the numpy kernels' scores within float32 round-off and the same labels in a small real
alignment classification; the choice of backend and its one-line errors. The numpy path is
held to the bit by the regression goldens (test_regression.py)."""
import numpy as np
import pytest

from disca_engine import settings as S
from disca_engine.clustering.align import backend as B
from disca_engine.clustering.align import rotations, scan
from disca_engine.clustering.align.fourier import energy, half, spectra
from disca_engine.clustering.align.stack import AlignedStack
from disca_engine.clustering.augment import random_rotation_matrices
from disca_engine.clustering.dataset import ParticleSet
from disca_engine.clustering.pipeline import classes_from_seeds
from disca_engine.errors import EngineError

# Kernel scores are float32 sums over 10^3-10^4 terms computed in another order (XLA's FFT
# and matmul): they agree to this relative tolerance, not to the bit.
SCORE_RTOL = 2e-4


@pytest.fixture(scope="module")
def jx():
    pytest.importorskip("jax")
    return B.JaxBackend()


def _simulated(names, n, snr, tilt, seed=0):
    from disca_engine.simulate import generate_subtomograms
    g = generate_subtomograms(names, n, snr=snr, tilt=tilt, seed=seed)
    data = g["data"].astype(np.float32)
    data = (data - data.mean(axis=(1, 2, 3), keepdims=True)) / data.std(axis=(1, 2, 3), keepdims=True)
    return data, np.asarray(g["labels"])


@pytest.fixture(scope="module")
def data():
    return _simulated(["ribosome", "rod"], 20, 1.0, 60)


def _stack(vols, backend, **kw):
    return AlignedStack(ParticleSet(None, None, np.asarray(vols, np.float32)), 12, 1,
                        backend=backend, **kw)


def test_rotation_kernel_matches_numpy(jx):
    rng = np.random.default_rng(0)
    vols = rng.standard_normal((6, 17, 17, 17)).astype(np.float32)
    mats = random_rotation_matrices(6, rng).astype(np.float32)
    ref = B.NUMPY.rotate(vols, mats)
    got = jx.host(jx.rotate(vols, mats))
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert (got[ref == 0] == 0).all()            # outside the box: 0 on both


def test_scan_kernels_match_numpy(data, jx):
    vols, _ = data
    stack = _stack(vols, B.NUMPY)
    grid = rotations.rotation_grid(100)
    refs = vols[[0, 25]]
    rc = scan.rotated_band(stack, refs, grid)
    ref_sc = scan.coarse_scores(stack.coarse_band, rc, stack.phases)
    got_sc = jx.host(scan.coarse_scores(jx.device(stack.coarse_band), jx.device(rc),
                                        jx.device(stack.phases), jx))
    np.testing.assert_allclose(got_sc, ref_sc, rtol=SCORE_RTOL, atol=SCORE_RTOL * np.abs(ref_sc).max())
    m = half(stack.band_f & stack.wedge)
    fp = spectra(vols, m)
    moved = B.NUMPY.rotate(np.repeat(refs[:1] * stack.mask, len(vols), 0), grid[:len(vols)])
    ref_t, ref_shift = scan.translation_scores(fp, energy(fp, stack.s), moved, m, 3)
    fpj = spectra(jx.device(vols), jx.device(m), jx.xp)
    got_t, got_shift = scan.translation_scores(fpj, energy(fpj, stack.s), jx.device(moved),
                                               jx.device(m), 3, jx)
    assert isinstance(got_t, np.ndarray) and isinstance(got_shift, np.ndarray)
    np.testing.assert_allclose(got_t, ref_t, rtol=SCORE_RTOL)
    np.testing.assert_array_equal(got_shift, ref_shift)


def test_align_and_score_matrix_match_numpy(data, jx):
    vols, truth = data
    grid = rotations.rotation_grid(150)
    refs = np.stack([vols[truth == c].mean(0) for c in (0, 1)])
    out = {}
    for be in (B.NUMPY, jx):
        stack = _stack(vols, be)
        out[be.name] = scan.align(stack, refs, grid), scan.score_matrix(stack, refs, grid)
    (lab_n, rot_n, sh_n, sc_n), m_n = out["numpy"]
    (lab_j, rot_j, sh_j, sc_j), m_j = out["jax"]
    np.testing.assert_array_equal(lab_j, lab_n)
    np.testing.assert_array_equal(sh_j, sh_n)
    np.testing.assert_allclose(rot_j, rot_n, atol=1e-5)
    np.testing.assert_allclose(sc_j, sc_n, rtol=SCORE_RTOL)
    np.testing.assert_allclose(m_j, m_n, rtol=SCORE_RTOL)


def test_alignment_classification_gives_the_same_labels_on_jax(data, jx, monkeypatch):
    """The alignment stage and the merge test of auto on 40 subtomograms: the same labels
    exactly, the same merge-test ratios within round-off."""
    vols, truth = data
    seeds = truth * 2 + np.arange(len(vols)) % 2
    z = np.zeros((len(vols), 2), np.float32)
    method = S.resolve("auto", alignment={"rotations": 300}).method
    runs = {}
    for name in ("numpy", "jax"):
        monkeypatch.setenv(B.BACKEND_ENV, name)
        lines = []
        classes = classes_from_seeds(ParticleSet(None, None, vols), seeds, z, method, 0, 1,
                                     log=lines.append)
        runs[name] = classes.labels, classes.history
        assert f"scans on {name}" in lines[0]
    (lab_n, hist_n), (lab_j, hist_j) = runs["numpy"], runs["jax"]
    np.testing.assert_array_equal(lab_j, lab_n)
    assert len(hist_j) == len(hist_n)
    for a, b in zip(hist_n, hist_j):
        assert a.keys() == b.keys()
        for key in a.keys() - {"seconds"}:
            assert np.allclose(np.asarray(b[key], float), np.asarray(a[key], float), rtol=1e-3) \
                if _numeric(a[key]) else b[key] == a[key], key


def _numeric(value):
    try:
        np.asarray(value, float)
        return True
    except (TypeError, ValueError):
        return False


def test_backend_choice_and_its_errors(monkeypatch):
    monkeypatch.setattr(B, "_chosen", {})
    assert B.select("numpy") == (B.NUMPY, "numpy (requested)")
    with pytest.raises(EngineError, match="DISCA_ALIGN_BACKEND=cupy: choose one of auto, numpy, jax"):
        B.select("cupy")
    import importlib.util
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "jax" else find(n, *a))
    with pytest.raises(EngineError, match="DISCA_ALIGN_BACKEND=jax: jax is not installed"):
        B.select("jax")
    assert B.select("auto") == (B.NUMPY, "numpy (auto: jax is not installed)")


def test_auto_without_a_gpu_is_numpy_and_says_so(monkeypatch):
    jax = pytest.importorskip("jax")
    try:
        has_gpu = bool(jax.devices("gpu"))
    except RuntimeError:
        has_gpu = False
    monkeypatch.setattr(B, "_chosen", {})
    monkeypatch.delenv(B.BACKEND_ENV, raising=False)
    be, why = B.select()
    if has_gpu:
        assert be.name == "jax" and "a GPU is visible to JAX" in why
    else:
        assert be is B.NUMPY and why == "numpy (auto: JAX sees no GPU)"
