"""DISCA clustering: the deep iterative loop and its numpy/scipy/sklearn building blocks.

Keep this file import-light: ``dataset``, ``augment``, ``stats``, ``labels`` and ``ddbi``
never import TensorFlow; only the network/training modules do, and only when used.
"""


def __getattr__(name):
    """``run_cluster`` (the whole DISCA run) is loaded on first use; the network modules it
    drives import TensorFlow only when a run starts. Prediction: ``clustering.predict.predict``."""
    if name == "run_cluster":
        from .loop import run_cluster
        return run_cluster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
