"""Gaussian mixtures of the features (method section 4): full covariances with K chosen by
BIC, refinement from the previous iteration, hard assignment.

The mixtures are fitted by ``sklearn.mixture.GaussianMixture`` (covariance_type='full',
reg_covar as the settings say) with BLAS limited to one thread around the fits: with several
threads on a loaded machine the sweep was measured 4-16x slower (method notes, section 9).
"""
import time

import numpy as np

from ..contract import format_k_range
from ..errors import EngineError
from ..progress import Progress
from .pca import CHUNK, as_2d, load_npz, log, save_npz


class Mixture:
    """Parameters of a full-covariance Gaussian mixture and the computations on them."""

    def __init__(self, weights, means, covariances, info=None):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.atleast_2d(np.asarray(means, dtype=np.float64))
        self.covariances = np.asarray(covariances, dtype=np.float64)
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covariances.shape != (k, d, d):
            raise ValueError(f"inconsistent mixture shapes: weights {self.weights.shape}, "
                             f"means {self.means.shape}, covariances {self.covariances.shape}")
        self.info = dict(info or {})
        self._prec_chol = None

    @property
    def k(self):
        return self.means.shape[0]

    @property
    def dim(self):
        return self.means.shape[1]

    @property
    def n_parameters(self):
        return n_parameters(self.k, self.dim)

    @property
    def precisions(self):
        pc = self._precision_cholesky()
        return np.einsum("kij,klj->kil", pc, pc)

    def _precision_cholesky(self):
        if self._prec_chol is None:
            pcs = np.empty_like(self.covariances)
            eye = np.eye(self.dim)
            for i, cov in enumerate(self.covariances):
                try:
                    chol = np.linalg.cholesky(cov)
                except np.linalg.LinAlgError:
                    raise EngineError(f"mixture component {i + 1} has a singular covariance: "
                                      "the model file is damaged or the features collapsed")
                pcs[i] = np.linalg.solve(chol, eye).T  # upper-triangular U with U U^T = cov^-1
            self._prec_chol = pcs
        return self._prec_chol

    def _weighted_log_prob(self, X):
        X = as_2d(X)
        if X.shape[1] != self.dim:
            raise EngineError(f"features have {X.shape[1]} dimensions but the mixture was fitted "
                              f"on {self.dim}: model and data do not match")
        pcs = self._precision_cholesky()
        out = np.empty((X.shape[0], self.k))
        const = self.dim * np.log(2 * np.pi)
        with np.errstate(divide="ignore"):
            logw = np.log(self.weights)
        for j in range(self.k):
            log_det = np.sum(np.log(np.diag(pcs[j])))
            for a in range(0, X.shape[0], CHUNK):
                y = (np.asarray(X[a:a + CHUNK], dtype=np.float64) - self.means[j]) @ pcs[j]
                out[a:a + CHUNK, j] = -0.5 * (const + np.einsum("ij,ij->i", y, y)) + log_det + logw[j]
        return out

    @staticmethod
    def _logsumexp(a):
        m = a.max(axis=1, keepdims=True)
        return (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]

    def score_samples(self, X):
        """Log-likelihood of every sample."""
        return self._logsumexp(self._weighted_log_prob(X))

    def predict_proba(self, X):
        wlp = self._weighted_log_prob(X)
        return np.exp(wlp - self._logsumexp(wlp)[:, None])

    def log_likelihood(self, X):
        """Mean log-likelihood per sample."""
        return float(np.mean(self.score_samples(X)))

    def bic(self, X):
        """``p ln N - 2 ln L`` with p = (K-1) + K d + K d(d+1)/2 and L the total likelihood."""
        n = np.asarray(X).shape[0]
        return float(self.n_parameters * np.log(n) - 2.0 * n * self.log_likelihood(X))

    def subset(self, components):
        """Mixture restricted to ``components`` (in that order), weights renormalised."""
        components = np.asarray(components, dtype=np.int64)
        w = self.weights[components]
        return Mixture(w / w.sum(), self.means[components], self.covariances[components], self.info)

    def reorder(self, perm):
        """Renumber components: old component j becomes component ``perm[j]`` (the mapping
        returned by ``labels.match_labels(..., return_permutation=True)``)."""
        perm = np.asarray(perm, dtype=np.int64)
        if sorted(perm.tolist()) != list(range(self.k)):
            raise ValueError(f"{perm} is not a permutation of 0..{self.k - 1}")
        return self.subset(np.argsort(perm))

    def save(self, path):
        save_npz(path, weights=self.weights, means=self.means, covariances=self.covariances)

    @classmethod
    def load(cls, path):
        z = load_npz(path, "mixture model")
        try:
            return cls(z["weights"], z["means"], z["covariances"])
        except KeyError as exc:
            raise EngineError(f"mixture file {path} lacks {exc}: not written by disca-engine")

    @classmethod
    def from_sklearn(cls, gm, **info):
        info.update(converged=bool(gm.converged_), n_iter=int(gm.n_iter_))
        return cls(gm.weights_, gm.means_, gm.covariances_, info)


def n_parameters(k, d):
    """Free parameters of a K-component full-covariance mixture in d dimensions."""
    return (k - 1) + k * d + k * d * (d + 1) // 2


def min_samples(k, d):
    """Fewest samples for which K components are fitted: each component needs on average
    d + 1 members to have a non-singular full covariance (and K < N)."""
    return max(k + 1, k * (d + 1))


def blas_one_thread():
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def _gmm(k, seed, reg_covar, n_init=1, init=None, init_params="k-means++", max_iter=100, tol=1e-3):
    from sklearn.mixture import GaussianMixture
    kwargs = {}
    if init is not None:
        kwargs = dict(weights_init=init.weights / init.weights.sum(), means_init=init.means,
                      precisions_init=init.precisions)
        init_params = "random_from_data"  # cheap; overridden by the given parameters
    return GaussianMixture(n_components=k, covariance_type="full", reg_covar=reg_covar,
                           n_init=n_init, init_params=init_params, random_state=seed,
                           max_iter=max_iter, tol=tol, **kwargs)


def _fit(X, k, seed, reg_covar, **kw):
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    gm = _gmm(k, seed, reg_covar, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported via info['converged']
        try:
            gm.fit(X)
        except (ValueError, np.linalg.LinAlgError) as exc:  # collapsed covariance
            raise _FitError(f"K = {k}: {str(exc).splitlines()[0]}")
    return Mixture.from_sklearn(gm, k=k)


class _FitError(Exception):
    """One mixture fit failed numerically (degenerate features); callers decide."""


_DEGENERATE = ("the features are degenerate (many identical or nearly constant values); "
               "restart with another seed or fewer PCA components")


def _k_text(candidates):
    return f"K range {format_k_range(candidates)}"


def select_k(X, candidates, seed, n_init, reg_covar, max_fit_samples, init_params="k-means++",
             max_iter=100, progress=True):
    """Fit one mixture per candidate K and keep the lowest BIC.

    Returns ``(mixture, {K: BIC})``. Candidates with ``K * (d + 1) > n`` (fewer than
    d + 1 samples per component on average; see :func:`min_samples`) are skipped with a
    line; if none is left an EngineError says how many samples are needed.
    ``max_fit_samples`` (0 = never subsample): with more samples, K is selected on a random
    subsample of that size and the winner is refitted on all data, initialised from its
    subsample fit. The BIC values are then those of the subsample
    (``mixture.info['n_fit']`` says on how many samples they were computed).
    """
    X = as_2d(X)
    n, d = X.shape
    candidates = sorted({int(k) for k in candidates})
    if not candidates or candidates[0] < 1:
        raise EngineError(f"bad K candidates {candidates}: give positive integers, e.g. 2:20")
    subsample = 0 < int(max_fit_samples) < n
    Xfit = _fit_rows(X, int(max_fit_samples), seed) if subsample else np.asarray(X, np.float64)
    feasible, skipped = _feasible(candidates, Xfit.shape[0], d)
    prog = Progress("mixture", total=len(feasible)) if progress else None
    if prog and subsample:
        prog.log(f"selecting K on a random subsample of {Xfit.shape[0]} of {n} samples")
    with blas_one_thread():
        best, bics = _sweep(Xfit, feasible, skipped, seed, reg_covar, prog, n_init=n_init,
                            init_params=init_params, max_iter=max_iter)
        if subsample:
            try:
                best = _fit(X, best.k, seed, reg_covar, init=best, max_iter=max_iter)
            except _FitError as exc:
                log("mixture", f"refit on all samples failed ({exc}); keeping the subsample fit")
    best_bic = bics[best.k]
    if prog:
        prog.finish(f"chosen K = {best.k} (lowest BIC {best_bic:.1f}" + (
            f" on {Xfit.shape[0]} of {n} samples, refitted on all)" if subsample else ")"))
    best.info.update(n_fit=Xfit.shape[0], n=n, subsampled=subsample, skipped=skipped, bic=best_bic)
    return best, bics


def _fit_rows(X, limit, seed):
    idx = np.sort(np.random.default_rng(seed).choice(len(X), limit, replace=False))
    return np.asarray(X[idx], dtype=np.float64)


def _feasible(candidates, nfit, d):
    """(candidates that ``nfit`` samples in ``d`` dimensions can fit, the others)."""
    feasible = [k for k in candidates if min_samples(k, d) <= nfit]
    skipped = [k for k in candidates if k not in feasible]
    if not feasible:
        need = min_samples(candidates[0], d)
        raise EngineError(f"{_k_text(candidates)} needs at least {need} subtomograms for "
                          f"{d}-dimensional features; you have {nfit}: lower --k-range, use "
                          "fewer PCA components or add data")
    if skipped:
        log("mixture", f"skipping K = {','.join(map(str, skipped))}: {nfit} samples in {d} "
                       f"dimensions support at most K = {feasible[-1]} full-covariance components")
    return feasible, skipped


def _sweep(Xfit, feasible, skipped, seed, reg_covar, prog, **kw):
    """(lowest-BIC mixture, {K: BIC}) over ``feasible``; failed fits join ``skipped``."""
    bics, best, best_bic = {}, None, np.inf
    for i, k in enumerate(feasible, 1):
        t0 = time.time()
        try:
            m = _fit(Xfit, k, seed, reg_covar, **kw)
        except _FitError as exc:
            log("mixture", f"fit failed, K skipped: {exc}")
            skipped.append(k)
            continue
        bics[k] = m.bic(Xfit)
        if bics[k] < best_bic:
            best, best_bic = m, bics[k]
        if prog:  # rate-limited: a fast sweep prints only its last line
            prog.update(i, extra=f"K={k} BIC={bics[k]:.1f} ({time.time() - t0:.1f}s)")
    if best is None:
        raise EngineError(f"every mixture fit failed ({_k_text(feasible)}): {_DEGENERATE}")
    return best, bics


def refine_mixture(X, previous, seed, reg_covar, max_iter=100):
    """Fit K = previous.k twice, initialised from ``previous`` and from scratch (k-means++),
    and keep the higher mean log-likelihood. Returns ``(mixture, 'inherited'|'de_novo')``.
    If ``previous`` has another dimension than X (e.g. the PCA size changed) only the
    de novo fit is possible; a line says so."""
    X = np.asarray(as_2d(X), dtype=np.float64)
    k = previous.k
    if min_samples(k, X.shape[1]) > X.shape[0]:
        raise EngineError(f"K = {k} needs at least {min_samples(k, X.shape[1])} subtomograms; "
                          f"you have {X.shape[0]}: lower --k-range or add data")
    fits = {}
    with blas_one_thread():
        for how, init in (("de_novo", None), ("inherited", previous)):
            if init is not None and previous.dim != X.shape[1]:
                log("mixture", f"previous mixture has {previous.dim} dimensions, features {X.shape[1]}: "
                                "fitting de novo only")
                continue
            try:
                fits[how] = _fit(X, k, seed, reg_covar, init=init, max_iter=max_iter)
            except _FitError as exc:
                log("mixture", f"{how.replace('_', ' ')} fit failed: {exc}")
    if not fits:
        raise EngineError(f"both mixture fits for K = {k} failed: {_DEGENERATE}")
    if len(fits) == 1:
        return next(iter(fits.values())), next(iter(fits))
    inherited, fresh = fits["inherited"], fits["de_novo"]
    ll_i, ll_f = inherited.log_likelihood(X), fresh.log_likelihood(X)
    inherited.info["log_likelihood"], fresh.info["log_likelihood"] = ll_i, ll_f
    if ll_i >= ll_f:
        inherited.info["other_log_likelihood"] = ll_f
        return inherited, "inherited"
    fresh.info["other_log_likelihood"] = ll_i
    return fresh, "de_novo"


def assign(X, mixture):
    """Hard labels by maximum posterior, empty components dropped.

    Returns ``(labels, posterior, pruned)``: labels are contiguous 0..K'-1 in the order
    of the surviving components, ``pruned`` is the mixture restricted to them (weights
    renormalised) and ``posterior`` the probability of the assigned class under
    ``pruned``, so ``assign(X, pruned)`` reproduces both exactly (what ``predict`` does).
    """
    proba = mixture.predict_proba(X)
    new_labels = np.argmax(proba, axis=1)
    present = np.unique(new_labels)
    pruned = mixture
    if present.size != mixture.k:
        pruned = mixture.subset(present)
        pruned.info = dict(mixture.info, dropped_empty=int(mixture.k - present.size))
        proba = pruned.predict_proba(X)   # renormalised weights; the argmax is unchanged
        new_labels = np.argmax(proba, axis=1)
    return new_labels.astype(np.int64), proba[np.arange(len(new_labels)), new_labels], pruned
