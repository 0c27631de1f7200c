"""How each iteration's labels are made, behind one interface (``label``):

- ``MixtureLabels`` (paper, fast): steps 3-4 of the method. Every candidate K is fitted de
  novo and the lowest BIC wins; when the winner has the previous iteration's K, that K is
  fitted again from the previous solution and de novo, keeping the better likelihood. The
  previous solution is re-expressed in the current feature space (the PCA basis is refitted
  every iteration, so the previous parameters live in another coordinate system). Hard
  labels by maximum posterior, empty clusters dropped, matched to the previous labels.
- ``FixedLabels`` (auto): the classification's labels (``pipeline.classify``), kept in every
  iteration: the network learns them, and the most trained network is saved.

Either way the mixture returned lives in the network's feature space, so the saved model
classifies new data (``predict``) as the run did.
"""
from dataclasses import dataclass

import numpy as np

from .training import rng


@dataclass
class Step:
    """One iteration's labels, each one's posterior, the mixture, BIC per K and how they
    were made (de_novo, inherited, aligned, kept)."""
    labels: np.ndarray
    posterior: np.ndarray
    mixture: object
    bics: dict
    how: str


def mixture_from_labels(X, labels, k, reg_covar):
    """The clustering ``labels`` as a mixture in the feature space ``X``."""
    from ..mixtures import Mixture
    X = np.asarray(X, np.float64)
    d = X.shape[1]
    weights, means, covs = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
    global_cov = np.atleast_2d(np.cov(X, rowvar=False))
    for j in range(k):
        members = X[labels == j]
        weights[j] = max(len(members), 1) / len(X)
        means[j] = members.mean(axis=0) if len(members) else X.mean(axis=0)
        cov = np.atleast_2d(np.cov(members, rowvar=False)) if len(members) > d else global_cov
        covs[j] = cov + reg_covar * np.eye(d)
    return Mixture(weights / weights.sum(), means, covs)


class MixtureLabels:
    """paper, fast: K by BIC among the K range each iteration (module docstring)."""
    keeps_labels = False

    def __init__(self, method, k_range):
        self.bic, self.reg_covar, self.k_range = method.k_by_bic, method.feature_pca.reg_covar, k_range

    def pca_k(self, it, prev_k):
        """The K that sizes this iteration's PCA (``settings.pca_components_for``)."""
        return prev_k

    def label(self, Z, it, seed, prev_labels, prev_k):
        from ..labels import match_labels
        from ..mixtures import assign, refine_mixture, select_k
        mix_seed = int(rng(seed, it, 3).integers(2 ** 31))
        mixture, bics = select_k(Z, self.k_range, seed=mix_seed, n_init=self.bic.n_init,
                                 reg_covar=self.reg_covar,
                                 max_fit_samples=self.bic.max_fit_samples, progress=False)
        how = "de_novo"
        if prev_labels is not None and mixture.k == prev_k:
            previous = mixture_from_labels(Z, prev_labels, prev_k, self.reg_covar)
            mixture, how = refine_mixture(Z, previous, seed=mix_seed, reg_covar=self.reg_covar)
        labels, posterior, mixture = assign(Z, mixture)
        if prev_labels is not None:
            labels, perm = match_labels(labels, prev_labels, return_permutation=True)
            mixture = mixture.reorder(perm)
        return Step(labels, posterior, mixture, {str(k): float(v) for k, v in bics.items()}, how)


class FixedLabels:
    """auto: the same labels every iteration (module docstring); ``history`` is the
    classification's record, reported with the first iteration."""
    keeps_labels = True   # the latest network is the most trained one: it is kept

    def __init__(self, labels, reg_covar, seed_k, history=None):
        self.labels, self.reg_covar = np.asarray(labels, np.int64), reg_covar
        self.seed_k, self.history = seed_k, history

    def pca_k(self, it, prev_k):
        """The first iteration's PCA is sized by the seed K, as later ones by the run's K."""
        return prev_k or (self.seed_k if it == 0 else None)

    def label(self, Z, it, seed, prev_labels, prev_k):
        k = int(self.labels.max()) + 1
        mixture = mixture_from_labels(Z, self.labels, k, self.reg_covar)
        proba = mixture.predict_proba(Z)
        return Step(self.labels, proba[np.arange(len(self.labels)), self.labels], mixture, {},
                    "aligned" if it == 0 else "kept")
