import numpy as np
import pytest

from disca_engine.clustering import mixtures as stats
from disca_engine.clustering.mixtures import Mixture, assign, n_parameters, refine_mixture
from disca_engine.clustering.pca import PCAModel, fit_pca


def select_k(X, candidates, seed=0, n_init=1, reg_covar=1e-5, max_fit_samples=20000, **kw):
    """``mixtures.select_k`` with the presets' mixture settings unless given."""
    return stats.select_k(X, candidates, seed, n_init, reg_covar, max_fit_samples, **kw)
from disca_engine.errors import EngineError


def blobs(n_per, k, d, sep=8.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, sep, (k, d))
    y = np.repeat(np.arange(k), n_per)
    return centres[y] + rng.normal(size=(k * n_per, d)), y


# ---------------------------------------------------------------------------- PCA
def test_pca_matches_sklearn_and_roundtrips(tmp_path):
    from sklearn.decomposition import PCA
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20))).astype(np.float32)
    model = fit_pca(X, 5)
    ref = PCA(5).fit(X.astype(np.float64))
    np.testing.assert_allclose(model.explained_variance, ref.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(np.abs(model.transform(X)), np.abs(ref.transform(X)), atol=1e-4)
    # fixed sign convention: largest-magnitude loading positive
    comps = model.components
    assert np.all(comps[np.arange(5), np.argmax(np.abs(comps), axis=1)] > 0)
    model.save(tmp_path / "pca.npz")
    again = PCAModel.load(tmp_path / "pca.npz")
    np.testing.assert_array_equal(again.transform(X), model.transform(X))
    assert model.explained_variance_ratio.sum() < 1


def test_pca_identity_and_cap(tmp_path, capsys):
    X = np.random.default_rng(1).normal(size=(10, 4))
    ident = fit_pca(X, None)
    assert ident.is_identity and fit_pca(X, 0).is_identity
    np.testing.assert_array_equal(ident.transform(X), X)
    ident.save(tmp_path / "id.npz")
    assert PCAModel.load(tmp_path / "id.npz").is_identity
    capped = fit_pca(X[:3], 16)
    assert capped.n_components == 2
    assert "warning" in capsys.readouterr().out
    with pytest.raises(EngineError, match="columns"):
        capped.transform(np.zeros((2, 5)))


def test_pca_rejects_nan():
    X = np.ones((5, 3))
    X[2, 1] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        fit_pca(X, 2)


# ---------------------------------------------------------------------------- Mixture
def test_mixture_matches_sklearn(tmp_path):
    from sklearn.mixture import GaussianMixture
    X, _ = blobs(60, 3, 4)
    gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    m = Mixture.from_sklearn(gm)
    assert m.k == 3 and m.n_parameters == 2 + 12 + 30 == n_parameters(3, 4)
    np.testing.assert_allclose(m.predict_proba(X), gm.predict_proba(X), atol=1e-10)
    assert m.log_likelihood(X) == pytest.approx(gm.score(X))
    assert m.bic(X) == pytest.approx(gm.bic(X))
    assert m.bic(X) == pytest.approx(m.n_parameters * np.log(len(X)) - 2 * len(X) * gm.score(X))
    m.save(tmp_path / "gmm.npz")
    again = Mixture.load(tmp_path / "gmm.npz")
    np.testing.assert_array_equal(again.predict_proba(X), m.predict_proba(X))
    np.testing.assert_allclose(m.precisions, gm.precisions_, rtol=1e-8)


def test_mixture_reorder_and_load_errors(tmp_path):
    X, _ = blobs(50, 3, 2)
    m, _ = select_k(X, [3], progress=False)
    perm = np.array([2, 0, 1])
    r = m.reorder(perm)
    np.testing.assert_allclose(r.predict_proba(X)[:, perm], m.predict_proba(X))
    with pytest.raises(EngineError, match="not found"):
        Mixture.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(EngineError, match="cannot read"):
        Mixture.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------------------- select_k
def test_bic_picks_true_k():
    X, _ = blobs(80, 4, 3, seed=3)
    m, bics = select_k(X, range(2, 8), progress=False)
    assert m.k == 4
    assert min(bics, key=bics.get) == 4 and set(bics) == set(range(2, 8))
    assert m.bic(X) == pytest.approx(bics[4])


def test_subsampled_selection_keeps_k_and_refits_on_all():
    X, _ = blobs(400, 3, 2, seed=4)
    m, bics = select_k(X, [2, 3, 4, 5], max_fit_samples=300, progress=False)
    assert m.k == 3 and m.info["subsampled"] and m.info["n_fit"] == 300 and m.info["n"] == 1200
    full, _ = select_k(X, [2, 3, 4, 5], max_fit_samples=0, progress=False)
    assert full.k == 3 and not full.info["subsampled"]
    assert m.log_likelihood(X) == pytest.approx(full.log_likelihood(X), rel=1e-3)


def test_infeasible_candidates(capsys):
    X, _ = blobs(10, 2, 4)           # N = 20, d = 4: K * 5 <= 20 -> K <= 4
    m, bics = select_k(X, [2, 3, 4, 5, 6], progress=False)
    assert set(bics) == {2, 3, 4}
    assert "skipping K = 5,6" in capsys.readouterr().out
    assert m.info["skipped"] == [5, 6]
    with pytest.raises(EngineError, match=r"K range 5:7 needs at least 25 subtomograms .* you have 20"):
        select_k(X, [5, 6, 7], progress=False)


def test_select_k_rejects_nan():
    X, _ = blobs(20, 2, 2)
    X[0, 0] = np.inf
    with pytest.raises(EngineError, match="NaN"):
        select_k(X, [2], progress=False)


# ---------------------------------------------------------------------------- refine / assign
def test_refine_keeps_better_likelihood():
    X, _ = blobs(100, 3, 2, sep=6, seed=5)
    good, _ = select_k(X, [3], progress=False)
    m, how = refine_mixture(X, good, 1, 1e-5)
    assert how in ("inherited", "de_novo")
    assert m.k == 3
    assert m.info["log_likelihood"] >= m.info["other_log_likelihood"]
    # a deliberately bad previous solution (all means in one corner) must lose to de novo
    bad = Mixture(np.ones(3) / 3, np.full((3, 2), 40.0) + np.arange(3)[:, None] * 1e-3,
                  np.tile(np.eye(2) * 1e-4, (3, 1, 1)))
    m2, how2 = refine_mixture(X, bad, 1, 1e-5)
    assert how2 == "de_novo"
    assert m2.log_likelihood(X) >= good.log_likelihood(X) - 1e-3
    assert m2.info["log_likelihood"] >= m2.info["other_log_likelihood"]
    # ... and a perfect previous solution is kept (EM from the optimum stays there)
    m3, how3 = refine_mixture(X, m, 2, 1e-5)
    assert m3.log_likelihood(X) >= m.log_likelihood(X) - 1e-6


def test_refine_prefers_inherited_when_de_novo_is_worse(monkeypatch):
    X, _ = blobs(100, 3, 2, sep=6, seed=5)
    good, _ = select_k(X, [3], progress=False)
    real = stats._fit
    poor = Mixture(np.ones(3) / 3, np.zeros((3, 2)) + np.arange(3)[:, None], np.tile(np.eye(2), (3, 1, 1)))

    def fake(X, k, seed, reg_covar, init=None, **kw):
        return real(X, k, seed, reg_covar, init=init, **kw) if init is not None else poor

    monkeypatch.setattr(stats, "_fit", fake)
    m, how = refine_mixture(X, good, 0, 1e-5)
    assert how == "inherited"
    assert m.log_likelihood(X) > poor.log_likelihood(X)
    np.testing.assert_allclose(m.means, good.means, atol=1e-3)


def test_refine_dimension_change_goes_de_novo(capsys):
    X, _ = blobs(50, 2, 3)
    prev, _ = select_k(X[:, :2], [2], progress=False)
    m, how = refine_mixture(X, prev, 0, 1e-5)
    assert how == "de_novo" and m.dim == 3
    assert "de novo only" in capsys.readouterr().out


def test_assign_drops_empty_components():
    X, y = blobs(50, 2, 2, seed=6)
    m, _ = select_k(X, [2], progress=False)
    # add a far-away component nobody belongs to, in the middle position
    far = Mixture(np.r_[m.weights[0], 0.2, m.weights[1]] / 1.2,
                  np.vstack([m.means[0], [1e3, 1e3], m.means[1]]),
                  np.stack([m.covariances[0], np.eye(2), m.covariances[1]]))
    labels, post, pruned = assign(X, far)
    assert pruned.k == 2 and set(labels.tolist()) == {0, 1}
    assert pruned.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(pruned.means, m.means)         # order of the survivors kept
    l2, p2, _ = assign(X, pruned)
    np.testing.assert_array_equal(labels, l2)
    np.testing.assert_allclose(post, p2)
    assert np.all((post > 0.5 - 1e-9) & (post <= 1))
    ref, _, _ = assign(X, m)
    np.testing.assert_array_equal(labels, ref)
    assert pruned.info["dropped_empty"] == 1


def test_blas_is_limited_during_fits(monkeypatch):
    seen = []
    real = stats._fit

    def spy(*a, **kw):
        from threadpoolctl import threadpool_info
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return real(*a, **kw)

    monkeypatch.setattr(stats, "_fit", spy)
    X, _ = blobs(30, 2, 2)
    select_k(X, [2, 3], progress=False)
    assert seen and max(seen) == 1


def test_failed_fits_are_reported(capsys):
    # 3 distinct points repeated exactly, no regularisation: no valid covariance exists
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 7.0]]), 30, axis=0)
    with pytest.raises(EngineError, match="every mixture fit failed .*degenerate"):
        select_k(X, [2, 3], reg_covar=0.0, progress=False)
    assert "fit failed, K skipped: K = 2" in capsys.readouterr().out
    m, bics = select_k(X, [2, 3], reg_covar=1e-5, progress=False)   # the default ridge copes
    assert m.k == 3


def test_refine_with_one_failing_fit_keeps_the_other(monkeypatch, capsys):
    X, _ = blobs(60, 2, 2)
    good, _ = select_k(X, [2], progress=False)
    real = stats._fit

    def failing_inherited(X, k, seed, reg_covar, init=None, **kw):
        if init is not None:
            raise stats._FitError("K = 2: boom")
        return real(X, k, seed, reg_covar, **kw)

    monkeypatch.setattr(stats, "_fit", failing_inherited)
    m, how = refine_mixture(X, good, 0, 1e-5)
    assert how == "de_novo" and "inherited fit failed" in capsys.readouterr().out

    def failing(*a, **kw):
        raise stats._FitError("K = 2: boom")

    monkeypatch.setattr(stats, "_fit", failing)
    with pytest.raises(EngineError, match="both mixture fits"):
        refine_mixture(X, good, 0, 1e-5)
