"""Rules that read the settings: the K range N supports, PCA size, learning rate, box,
and the settings as JSON-ready data."""
from dataclasses import fields, is_dataclass

from .. import contract
from ..errors import EngineError
from .presets import PRESETS
from .resolve import CLASSIFICATION_STAGES, FLAT, STAGES


def check_k_range(settings, n):
    """The K range the run uses for ``n`` subtomograms. The preset's own range is only an
    upper bound for auto (the seeds): capped at what N supports. A range the user gave, or
    a BIC preset's, is checked as given: the largest K needs min_cluster_size members each."""
    method = settings.method
    per, ks = method.min_cluster_size, method.k_range
    if method.classification is not None and not settings.k_range_given and n >= 2 * per:
        return tuple(k for k in ks if k * per <= n) or (2,)
    if max(ks) * per > n:
        lo = min(ks)
        fit = max(lo, n // per)
        raise EngineError(f"K range {contract.format_k_range(ks)} needs at least {max(ks) * per} "
                          f"subtomograms ({per} per cluster for K={max(ks)}); you have {n} "
                          f"subtomograms: lower --k-range (e.g. --k-range {lo}:{fit}) or add data")
    return ks


def pca_components_for(method, n, k=None):
    """PCA size of the features for N subtomograms: the preset's size, capped at
    N / per_subtomograms; with ``per_cluster`` and a known K, capped so that K
    full-covariance components have about twice the d + 1 members each that they need."""
    pca = method.feature_pca
    d = pca.components
    if pca.per_subtomograms:
        d = min(d, max(2, n // pca.per_subtomograms))
    if pca.per_cluster and k:
        d = min(d, max(2, n // (2 * int(k)) - 1))
    return max(1, min(d, n - 1, method.network.feature_dim))


def learning_rate(method, iteration):
    """Learning rate of 0-based ``iteration``: start x decay^iteration."""
    return float(method.network.learning_rate) * float(method.network.lr_decay) ** int(iteration)


def smallest_box(preset=None):
    """Smallest box (voxels) the network of ``preset`` accepts (each valid 3x3x3 convolution
    takes 2 voxels), or of every preset when None."""
    names = [preset] if preset else list(PRESETS)
    return max(2 * len(PRESETS[name].network.widths) + 1 for name in names)


def check_box(method, box):
    need = 2 * len(method.network.widths) + 1
    if box < need:
        raise EngineError(f"subtomograms are {box}^3 but the {method.preset} network needs boxes "
                          f"of at least {need}^3 ({len(method.network.widths)} valid 3x3x3 "
                          "convolutions): re-extract with a larger box")
    return need


# ---------------------------------------------------------------------------- as data
def as_dict(obj):
    """JSON-ready nested dict of a method or run options; stages that do not run are left
    out (a fast report holds only what fast uses)."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            out[f.name] = as_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        elif value is not None or not _is_stage(f):
            out[f.name] = value
    return out


def _is_stage(f):
    return f.name in STAGES + CLASSIFICATION_STAGES + ("classification",)


def preset_values(name):
    """{preset: value} of a command-line setting (``k_range``, ``max_iterations``, ...) for
    form help texts."""
    def value(method):
        if name == "k_range":
            return list(method.k_range)
        stage, key = FLAT[name]
        return getattr(getattr(method, stage), key)
    return {preset: value(method) for preset, method in PRESETS.items()}
