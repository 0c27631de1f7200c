"""PCA of the network features (method section 4): a linear projection fitted by the
eigen-decomposition of the covariance, accumulated in row blocks (constant memory at any N),
and the helpers for the small model files shared with ``mixtures``."""
import os

import numpy as np

from ..errors import EngineError
from ..io.atomic import atomic_path

CHUNK = 8192  # rows per block in PCA/likelihood loops: constant memory at any N


def log(stage, message):
    print(f"[{stage}] {message}", flush=True)


def save_npz(path, **arrays):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_npz(path, what):
    if not os.path.isfile(path):
        raise EngineError(f"{what} file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile/ValueError on damaged files
        raise EngineError(f"cannot read {what} file {path}: {exc}")


def as_2d(X, what="features"):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (N, d), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise EngineError(f"{what} contain NaN/Inf values: the network diverged; lower the "
                          "learning rate or restart with another seed")
    return X


class PCAModel:
    """Linear projection ``(X - mean) @ components.T``; ``components`` None = identity."""

    def __init__(self, mean=None, components=None, explained_variance=None, total_variance=None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.components = None if components is None else np.asarray(components, dtype=np.float64)
        self.explained_variance = (None if explained_variance is None
                                   else np.asarray(explained_variance, dtype=np.float64))
        self.total_variance = None if total_variance is None else float(total_variance)

    @property
    def is_identity(self):
        return self.components is None

    @property
    def n_components(self):
        return None if self.components is None else self.components.shape[0]

    @property
    def explained_variance_ratio(self):
        if self.components is None or not self.total_variance:
            return None
        return self.explained_variance / self.total_variance

    def transform(self, X):
        """Project (N, D) features; float64 (N, n_components), computed in row blocks."""
        X = np.asarray(X)
        if self.components is None:
            return np.array(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.components.shape[1]:
            raise EngineError(f"features have shape {X.shape} but the PCA model expects "
                              f"{self.components.shape[1]} columns: model and data do not match")
        out = np.empty((X.shape[0], self.components.shape[0]))
        proj = self.components.T
        offset = self.mean @ proj
        for a in range(0, X.shape[0], CHUNK):
            np.subtract(np.asarray(X[a:a + CHUNK], dtype=np.float64) @ proj, offset, out=out[a:a + CHUNK])
        return out

    def save(self, path):
        if self.components is None:
            save_npz(path, identity=np.array(True))
        else:
            save_npz(path, identity=np.array(False), mean=self.mean, components=self.components,
                      explained_variance=self.explained_variance,
                      total_variance=np.array(self.total_variance or 0.0))

    @classmethod
    def load(cls, path):
        z = load_npz(path, "PCA model")
        if bool(z.get("identity", False)):
            return cls()
        try:
            return cls(z["mean"], z["components"], z["explained_variance"], float(z["total_variance"]))
        except KeyError as exc:
            raise EngineError(f"PCA model file {path} lacks {exc}: not written by disca-engine")


def fit_pca(X, n_components, seed=0):
    """PCA by eigen-decomposition of the covariance (accumulated in row blocks, so memory
    stays D x D at any N). ``n_components`` None or 0 gives the identity model. More
    components than min(N - 1, D) are capped, with a warning line. ``seed`` is unused
    (the solver is deterministic) and kept for interface stability. Component signs are
    fixed (largest entry positive) so refits give comparable axes."""
    X = as_2d(X)
    if not n_components:
        return PCAModel()
    n, dim = X.shape
    if n < 2:
        raise EngineError(f"PCA needs at least 2 subtomograms, got {n}")
    k = int(n_components)
    cap = min(n - 1, dim)
    if k > cap:
        log("pca", f"warning: {k} PCA components requested but {n} samples of dimension {dim} "
                    f"support at most {cap}; using {cap}")
        k = cap
    mean = np.zeros(dim)
    for a in range(0, n, CHUNK):
        mean += np.asarray(X[a:a + CHUNK], dtype=np.float64).sum(axis=0)
    mean /= n
    # float32 features: centred blocks multiplied in float32 (2x faster), summed in float64
    work = np.float32 if np.asarray(X[:1]).dtype == np.float32 else np.float64
    mean_w = mean.astype(work)
    cov = np.zeros((dim, dim))
    for a in range(0, n, CHUNK):
        block = np.asarray(X[a:a + CHUNK], dtype=work) - mean_w
        cov += block.T @ block
    cov /= n - 1
    cov = (cov + cov.T) / 2
    from scipy.linalg import eigh
    w, v = eigh(cov, subset_by_index=[dim - k, dim - 1])   # only the k largest
    order = np.argsort(w)[::-1]
    w = w[order]
    comps = v[:, order].T.copy()
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    return PCAModel(mean, comps, np.maximum(w, 0.0), float(np.trace(cov)))
