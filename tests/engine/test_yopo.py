"""YOPO network (method section 3): architecture, inference determinism, translation
invariance, the masked Dense(K) head, and the compiled training steps."""
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from disca_engine import settings as S  # noqa: E402
from disca_engine.clustering.network import model as network_model  # noqa: E402
from disca_engine.clustering.network import runtime as training  # noqa: E402

training.configure_runtime(threads=2, seed=0)
training.set_precision("float32")

import keras  # noqa: E402

from disca_engine.clustering.network import yopo  # noqa: E402


def test_paper_architecture_exactly():
    model = yopo.build_feature_model(21)
    layers = model.layers
    assert isinstance(layers[0], keras.layers.InputLayer)
    drop = layers[1]
    assert isinstance(drop, keras.layers.GaussianDropout) and drop.rate == 0.5
    convs = [l for l in layers if isinstance(l, keras.layers.Conv3D)]
    assert [c.filters for c in convs] == list(range(64, 209, 16))
    for c in convs:
        assert c.kernel_size == (3, 3, 3) and c.strides == (1, 1, 1) and c.padding == "valid"
        assert isinstance(c.kernel_initializer, keras.initializers.Orthogonal)
        assert isinstance(c.bias_initializer, keras.initializers.Zeros)
    # conv -> ELU -> BN in every block, and a global max-pooling tap of each block output
    for i in range(1, 11):
        conv, elu, bn = (model.get_layer(f"{n}{i}") for n in ("conv", "elu", "bn"))
        assert isinstance(elu, keras.layers.ELU) and isinstance(bn, keras.layers.BatchNormalization)
        assert elu.input is conv.output and bn.input is elu.output
        tap = model.get_layer(f"tap{i}")
        assert isinstance(tap, keras.layers.GlobalMaxPooling3D) and tap.input is bn.output
    assert not any(isinstance(l, (keras.layers.MaxPooling3D, keras.layers.AveragePooling3D)) for l in layers)
    concat = model.get_layer("concat")
    assert concat.output.shape[-1] == 1360
    assert isinstance(model.get_layer("concat_bn"), keras.layers.BatchNormalization)
    dense = model.get_layer("features")
    assert dense.units == 1024 and model.output.shape[-1] == 1024
    assert model.get_layer("conv10").output.shape[1:4] == (1, 1, 1)  # 21 - 2 x 10


def test_paper_cost_and_minimum_box():
    assert yopo.forward_gflop(24, yopo.PAPER_WIDTHS, 1024) == pytest.approx(13.45, abs=0.01)
    assert yopo.min_box(10) == 21
    with pytest.raises(ValueError, match="too small"):
        yopo.build_feature_model(20)


def _small(box=24, widths=(8, 12, 16), seed=0):
    keras.utils.set_random_seed(seed)
    return yopo.build_feature_model(box, widths, 32)


def test_features_deterministic_in_inference_mode_only():
    model = _small()
    x = np.random.default_rng(0).standard_normal((3, 24, 24, 24, 1)).astype(np.float32)
    a, b = model(x, training=False), model(x, training=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = model(x, training=True)  # Gaussian dropout is active in training
    assert np.abs(np.asarray(c) - np.asarray(a)).max() > 1e-3


def test_translation_invariance_from_global_max_pooling():
    """An object in a zero background, shifted so that everything it influences stays inside
    every block's valid region, gives the same features (global max pooling is exact)."""
    blocks, box, size = 3, 24, 3
    model = _small(box, (8, 12, 16))
    for layer in model.layers:  # non-trivial BN statistics so the test is not degenerate
        if isinstance(layer, keras.layers.BatchNormalization):
            rng = np.random.default_rng(1)
            layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    obj = np.random.default_rng(2).standard_normal((size,) * 3).astype(np.float32)
    lo, hi = 2 * blocks, box - 2 * blocks - size  # allowed corner positions: 6..15
    vols = []
    for z, y, x in ((lo, lo, lo), (hi, lo + 3, hi - 2), (lo + 4, hi, lo + 1)):
        v = np.zeros((box,) * 3, np.float32)
        v[z:z + size, y:y + size, x:x + size] = obj
        vols.append(v)
    f = np.asarray(model(np.stack(vols)[..., None], training=False))
    np.testing.assert_allclose(f[1], f[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f[2], f[0], rtol=1e-5, atol=1e-5)
    # and the features do see the object: a different object changes them
    v = np.zeros((box,) * 3, np.float32)
    v[lo:lo + size, lo:lo + size, lo:lo + size] = obj[::-1]
    g = np.asarray(model(v[None, ..., None], training=False))[0]
    assert np.abs(g - f[0]).max() > 1e-3


def test_masked_head_is_a_dense_k_softmax():
    feats = _small(21, (8,))
    model = yopo.build_classifier(feats, k_max=6)
    yopo.reset_head(model, 4, seed=3)
    assert yopo.get_k(model) == 4
    p = np.asarray(model(np.random.default_rng(0).standard_normal((5, 21, 21, 21, 1)), training=False))
    assert p.shape == (5, 6)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert np.all(p[:, 4:] == 0) and np.all(p[:, :4] > 0)
    dense = model.get_layer("head")
    np.testing.assert_array_equal(np.asarray(dense.bias), 0)
    w = np.asarray(dense.kernel)
    np.testing.assert_allclose(w.T @ w, np.eye(6), atol=1e-5)  # orthogonal columns
    with pytest.raises(ValueError):
        yopo.set_k(model, 7)


def _net(**overrides):
    network = S.resolve("fast", network={"widths": [8, 8], "feature_dim": 16}, batch_size=8,
                        **overrides).method.network
    return network_model.Network(network, 4, 21, "float32", training.make_strategy()[0])


def test_network_steps_learn_and_reinitialise_reproducibly():
    net = _net()
    net.reinitialise(5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 21, 21, 21)).astype(np.float32)
    x[:4] += 1.5  # two separable groups
    y = np.repeat(np.eye(2, dtype=np.float32), 4, axis=0)
    net.replace_head(2, seed=1)
    assert net.k == 2
    before = net.features(x)
    losses = [net.train_batch(x, y) for _ in range(15)]
    assert losses[-1] < losses[0]
    assert np.abs(net.features(x) - before).max() > 1e-4
    net.reinitialise(5)
    np.testing.assert_array_equal(net.features(x), before)
    net.reinitialise(6)
    assert np.abs(net.features(x) - before).max() > 1e-3


def test_head_step_trains_only_the_head_and_state_roundtrip():
    net = _net()
    net.reinitialise(0)
    f = np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0, 1]]
    net.replace_head(3, seed=2)
    conv_before = np.asarray(net.model.get_layer("conv1").kernel).copy()
    head_before = np.asarray(net.model.get_layer("head").kernel).copy()
    state = net.get_state()
    for _ in range(5):
        net.train_head_batch(f, y)
    np.testing.assert_array_equal(np.asarray(net.model.get_layer("conv1").kernel), conv_before)
    assert np.abs(np.asarray(net.model.get_layer("head").kernel) - head_before).max() > 0
    net.set_state(state)
    restored = net.get_state()
    for group in state:
        for a, b in zip(state[group], restored[group]):
            np.testing.assert_array_equal(a, b)


def test_precision_choice_follows_cpu_flags(monkeypatch):
    monkeypatch.setattr(training, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    monkeypatch.setattr(training, "CPU_BF16_AUTO", True)
    assert training.choose_precision("auto")[0] == "bfloat16"
    assert training.choose_precision("auto", forward_gflop=13.45)[0] == "bfloat16"
    monkeypatch.setattr(training, "CPU_BF16_AUTO", False)  # the shipped setting (measured slower)
    why = training.choose_precision("auto", forward_gflop=13.45)
    assert why[0] == "float32" and "measured" in why[1]
    monkeypatch.setattr(training, "CPU_BF16_AUTO", True)
    assert training.choose_precision("auto", forward_gflop=0.38)[0] == "float32"  # small net: measured faster
    monkeypatch.setattr(training, "cpu_flags", lambda: {"avx2"})
    assert training.choose_precision("auto")[0] == "float32"
    assert training.choose_precision("float16") == ("float16", "requested")
    from disca_engine.errors import EngineError
    with pytest.raises(EngineError):
        training.choose_precision("int8")
