"""Strict JSON files: NaN and infinities (not JSON) are written as null."""
import json
import math

from .atomic import atomic_path


def finite(value):
    """``value`` with every non-finite float replaced by None (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars
        return finite(value.item())
    return value


def write_json(path, data, indent=1):
    """Write ``data`` atomically as strict JSON (``allow_nan=False`` after :func:`finite`)."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(finite(data), fh, indent=indent, allow_nan=False)
