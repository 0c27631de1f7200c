"""The network under both Keras backends the engine supports (``KERAS_BACKEND``: tensorflow,
the bundled default, and jax), on the CPU. Keras picks its backend once, at import, so each
backend runs in its own process. Also: a model trained under one backend predicts under the
other, and the one-line errors for a backend that cannot be used."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from disca_engine.clustering.network import runtime
from disca_engine.errors import EngineError
from disca_engine.io.star import read_star

BACKENDS = ("tensorflow", "jax")
RUN = ["--preset", "fast", "--k-range", "2:4", "--max-iterations", "2", "--epochs-per-iteration", "1",
       "--batch-size", "16", "--precision", "float32", "--threads", "1", "--seed", "2", "--no-report"]

# A tiny network trained on two separable groups: the numbers the test asserts on.
STEPS = r"""
import json, sys
import numpy as np
from disca_engine import settings as S
from disca_engine.clustering.network import model as M, runtime
runtime.configure_runtime(threads=1, seed=0)
import keras
strategy, where = runtime.make_strategy()
network = S.resolve("fast", network={"widths": [8, 8], "feature_dim": 16}, batch_size=8).method.network
net = M.Network(network, 4, 21, "float32", strategy)
net.reinitialise(5)
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 21, 21, 21)).astype(np.float32)
x[:4] += 1.5
y = np.repeat(np.eye(2, dtype=np.float32), 4, axis=0)
net.replace_head(2, seed=1)
before = net.features(x)
losses = [net.train_batch(x, y) for _ in range(15)]
trained = net.predict_volumes(x)
conv = np.asarray(net.model.get_layer("conv1").kernel).copy()
head_losses = [net.train_head_batch(net.features(x), y) for _ in range(5)]
head_only = bool(np.array_equal(np.asarray(net.model.get_layer("conv1").kernel), conv))
net.save_model(sys.argv[1] + "/model.keras")
np.save(sys.argv[1] + "/x.npy", x)
np.save(sys.argv[1] + "/probs.npy", net.predict_volumes(x))
net.reinitialise(5)
print(json.dumps({"backend": keras.backend.backend(), "where": where, "losses": losses,
                  "head_losses": head_losses, "head_only": head_only,
                  "reinitialised_same": bool(np.array_equal(net.features(x), before)),
                  "probs_shape": list(trained.shape),
                  "masked_max": float(trained[:, 2:].max()),
                  "row_sums": trained.sum(1).tolist()}))
"""

LOAD = r"""
import json, sys
import numpy as np
from disca_engine.clustering.network import model as M, runtime
runtime.configure_runtime(threads=1, seed=0)
m = M.load_model(sys.argv[1] + "/model.keras")
fn = runtime.inference_function(runtime.make_strategy()[0], m)
np.save(sys.argv[2], fn(np.load(sys.argv[1] + "/x.npy")[..., None]))
"""


def env_for(backend):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1")
    return env


def python(backend, *args):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          env=env_for(backend))
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-2500:]
    return proc.stdout


def needs(backend):
    import importlib.util
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = {}
    for backend in BACKENDS:
        needs(backend)
        folder = tmp_path_factory.mktemp(backend)
        result = json.loads(python(backend, "-c", STEPS, folder).strip().splitlines()[-1])
        out[backend] = (folder, result)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_network_trains_and_predicts(trained, backend):
    _, r = trained[backend]
    assert r["backend"] == backend
    assert ("JAX" in r["where"]) == (backend == "jax")
    assert r["losses"][-1] < 0.5 * r["losses"][0]
    assert r["probs_shape"] == [8, 4]              # k_max units, the masked ones at 0
    assert r["masked_max"] == 0.0
    np.testing.assert_allclose(r["row_sums"], 1.0, rtol=1e-5)
    assert r["head_losses"][-1] < r["head_losses"][0]
    assert r["head_only"]                          # the head step leaves the features alone
    assert r["reinitialised_same"]                 # restart r starts from the same state


@pytest.mark.parametrize("saved,loaded", [("tensorflow", "jax"), ("jax", "tensorflow")])
def test_model_saved_under_one_backend_predicts_under_the_other(trained, saved, loaded, tmp_path):
    folder, _ = trained[saved]
    # the saved classifier's probabilities, loaded under the other backend and its own
    python(loaded, "-c", LOAD, folder, tmp_path / "other.npy")
    python(saved, "-c", LOAD, folder, tmp_path / "own.npy")
    other, own = np.load(tmp_path / "other.npy"), np.load(tmp_path / "own.npy")
    assert other.shape == own.shape == (8, 4)
    np.testing.assert_allclose(other, own, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(own, np.load(folder / "probs.npy"), rtol=1e-4, atol=1e-5)


def test_cluster_and_predict_under_jax(tmp_path):
    """The whole command under JAX; its model predicts the run's labels under both backends."""
    for backend in BACKENDS:
        needs(backend)
    from disca_engine.simulate import simulate_subtomograms
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        star = simulate_subtomograms(str(tmp_path / "sim"), classes=3, n_per_class=12, snr=1.0,
                                     size=21, voxel_A=20.0, seed=1)
    run = tmp_path / "run"
    log = python("jax", "-m", "disca_engine", "cluster", "--input", star, "--output", run, *RUN)
    assert "JAX on the CPU" in log
    labels = [read_star(os.path.join(run, "clusters.star"))["rlnClassNumber"]]
    for backend in BACKENDS:
        out = tmp_path / f"predict_{backend}"
        python(backend, "-m", "disca_engine", "predict", "--model", run, "--input", star,
               "--output", out, "--threads", "1")
        labels.append(read_star(os.path.join(out, "clusters.star"))["rlnClassNumber"])
    assert labels[1] == labels[0]
    assert labels[2] == labels[0]


def test_unknown_or_missing_backend_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(EngineError, match="KERAS_BACKEND=torch: the engine runs on tensorflow or jax"):
        runtime.keras_backend()
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    real = runtime.importlib.util.find_spec
    monkeypatch.setattr(runtime.importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(EngineError, match="KERAS_BACKEND=jax: jax is not installed"):
        runtime.configure_runtime(threads=1)


def test_tensorflow_only_device_splits_are_refused_under_jax(monkeypatch):
    needs("jax")
    monkeypatch.setenv(runtime.CPU_DEVICES_ENV, "2")
    with pytest.raises(EngineError, match="MirroredStrategy; unset it or use KERAS_BACKEND=tensorflow"):
        runtime.configure_jax(None, None, 0, True)


def test_backend_switch_after_keras_import_is_refused(monkeypatch):
    keras = pytest.importorskip("keras")
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    needs(other)
    monkeypatch.setenv("KERAS_BACKEND", other)
    with pytest.raises(EngineError, match="Keras was already imported with"):
        runtime.keras_backend()
