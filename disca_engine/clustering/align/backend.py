"""The array library the alignment scans run on: numpy (the CPU, the default off GPUs) or
jax.numpy (an accelerator). The scan kernels (``scan``, ``fourier``, ``stack``) are written
once against an :class:`ArrayBackend`: its ``xp`` (the array module) for FFTs and
element-wise maths, and the few calls whose spelling or meaning differ between the two
(``matmul`` at full float32 precision, ``rotate``, moving arrays to and from the device).
With numpy every call is the numpy call the kernels made before, so that path is unchanged
to the bit (docs/accelerators.md).

Chosen by ``DISCA_ALIGN_BACKEND`` = auto | numpy | jax (default auto: jax when JAX sees a
GPU, else numpy). JAX is imported only when it may be used.
"""
import os

import numpy as np

from ...errors import EngineError

BACKEND_ENV = "DISCA_ALIGN_BACKEND"
CHOICES = ("auto", "numpy", "jax")


class ArrayBackend:
    """numpy: every method is the plain numpy operation (or nothing)."""
    name = "numpy"
    xp = np

    def device(self, a):
        """``a`` where the kernels compute (a no-op for numpy)."""
        return a

    def host(self, a):
        """``a`` as a numpy array (a no-op for numpy)."""
        return a

    def matmul(self, a, b):
        return a @ b

    def compiled(self, fn, static=("be",)):
        """``fn`` as the kernels call it: itself for numpy, jit-compiled for jax (its
        ``static`` keyword arguments fixed at compile time)."""
        return fn

    def rotate(self, vols, mats):
        """(B, s, s, s) volumes turned by (B, 3, 3) matrices, outside voxels 0
        (``augment.rotate_volumes``' trilinear rotation, float32)."""
        from ..augment import rotate_volumes
        return rotate_volumes(self.host(vols), self.host(mats), np.random.default_rng(0),
                              noise_std=0.0)


class JaxBackend(ArrayBackend):
    """jax.numpy on JAX's default device (the first GPU, else the CPU)."""
    name = "jax"

    def __init__(self):
        import jax
        import jax.numpy as jnp
        self.jax, self.xp = jax, jnp
        self._rotate = jax.jit(_rotate_trilinear)
        self._compiled = {}

    def device(self, a):
        return self.xp.asarray(a)

    def host(self, a):
        return np.asarray(a)

    def matmul(self, a, b):
        # GPUs default to TF32 products for float32 (10-bit mantissa): keep full precision,
        # the scores of close rotations differ in the fourth digit
        return self.xp.matmul(a, b, precision=self.jax.lax.Precision.HIGHEST)

    def compiled(self, fn, static=("be",)):
        key = (fn, tuple(static))
        if key not in self._compiled:  # one jit per kernel; it re-traces per input shape
            self._compiled[key] = self.jax.jit(fn, static_argnames=static)
        return self._compiled[key]

    def rotate(self, vols, mats):
        return self._rotate(self.xp.asarray(vols, self.xp.float32),
                            self.xp.asarray(mats, self.xp.float32))


def _rotate_trilinear(vols, mats):
    """jax.numpy version of ``augment._rotate_chunk`` (order 1, no noise): the same source
    coordinates R^T p, the same clipping, corner order and interpolation order."""
    import jax
    import jax.numpy as jnp
    from ..augment import _grid
    b, s = vols.shape[0], vols.shape[1]
    ss, c = s * s, (s - 1) / 2.0
    src = jnp.matmul(jnp.swapaxes(mats, 1, 2), jnp.asarray(_grid(s)),
                     precision=jax.lax.Precision.HIGHEST)                 # (b, 3, n): x, y, z
    outside = jnp.max(jnp.abs(src), axis=1) > c
    src = src + jnp.float32(c)
    lo = jnp.floor(jnp.clip(src, 0, s - 2))
    frac = src - lo
    lo = lo.astype(jnp.int32)
    idx = lo[:, 2] * ss + lo[:, 1] * s + lo[:, 0]
    flat = vols.reshape(b, -1)
    g = [jnp.take_along_axis(flat, idx + o, axis=1)
         for o in (0, 1, s, s + 1, ss, ss + 1, ss + s, ss + s + 1)]
    fx, fy, fz = frac[:, 0], frac[:, 1], frac[:, 2]

    def lerp(a, z, w):
        return a + (z - a) * w
    c00, c10, c01, c11 = (lerp(g[k], g[k + 1], fx) for k in (0, 2, 4, 6))
    out = lerp(lerp(c00, c10, fy), lerp(c01, c11, fy), fz)
    return jnp.where(outside, jnp.float32(0), out).reshape(vols.shape)


NUMPY = ArrayBackend()
_chosen = {}


def select(choice=None):
    """(backend, why) for ``choice`` (default: ``DISCA_ALIGN_BACKEND``, else auto). jax when
    asked for and not installed is an error; auto without a GPU visible to JAX is numpy."""
    choice = (choice or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if choice not in CHOICES:
        raise EngineError(f"{BACKEND_ENV}={choice}: choose one of {', '.join(CHOICES)}")
    if choice not in _chosen:
        _chosen[choice] = _select(choice)
    return _chosen[choice]


def _select(choice):
    if choice == "numpy":
        return NUMPY, "numpy (requested)"
    import importlib.util
    if importlib.util.find_spec("jax") is None:
        if choice == "jax":
            raise EngineError(f"{BACKEND_ENV}=jax: jax is not installed in this environment; "
                              f"install it (pip install jax) or set {BACKEND_ENV}=numpy")
        return NUMPY, "numpy (auto: jax is not installed)"
    # JAX would otherwise reserve 75% of GPU memory at first use, beside TensorFlow's network
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    gpus = jax_gpus()
    if choice == "jax":
        return JaxBackend(), f"jax on {gpus[0] if gpus else 'the CPU'} (requested)"
    if gpus:
        return JaxBackend(), f"jax on {gpus[0]} (auto: a GPU is visible to JAX)"
    return NUMPY, "numpy (auto: JAX sees no GPU)"


def jax_gpus():
    """The GPUs JAX sees ([] with a CPU-only jaxlib); imports JAX."""
    import jax
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU platform in this jaxlib
        return []
