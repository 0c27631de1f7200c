"""DISCA clustering. ``pipeline`` shows the method stage after stage; ``run`` is the command
(checks, run folder, restarts, outputs); ``stages`` the default method's classification,
``align`` its numerical kernels, ``network`` the DISCA network and its iteration loop;
``predict`` labels new data with a trained run.

Keep this file import-light: only the ``network`` modules import TensorFlow, and only when
a run starts.
"""


def __getattr__(name):
    """``run_cluster`` (the whole DISCA run) is loaded on first use."""
    if name == "run_cluster":
        from .run import run_cluster
        return run_cluster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
