"""Paper YOPO throughput under any Keras 3 backend (JAX, PyTorch, TensorFlow).

The engine trains with TensorFlow by default, or with JAX under KERAS_BACKEND=jax
(docs/accelerators.md). A GPU machine without TensorFlow (the project's lent
GPU has JAX and PyTorch but no TensorFlow, and no internet to install it) can still measure
what the network itself costs on that GPU: the same layers (``yopo.build_feature_model`` and
``build_classifier``, the paper's widths), the same loss (categorical hinge, summed / batch)
and optimizer (Nadam), run through Keras's own compiled steps of the chosen backend.
Forward = ``predict_on_batch`` of the feature model (inference); training = ``train_on_batch``
of the classifier. Host batches are copied to the device in every call, as the loop does.

    KERAS_BACKEND=jax python benchmarks/bench_network_keras.py --box 24,32 \
        --precisions float32,bfloat16,float16 --seconds 5 --batch 64 --out R.json

Rates are subtomograms per second. They are the network's, not the engine's loop (which
adds batch assembly and rotations on the host) and not TensorFlow's kernels.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench_network import rate  # noqa: E402  (same timing rule as the TensorFlow benchmark)

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def bench(box, precision, batch, seconds):
    import keras
    from disca_engine.clustering.network import yopo
    keras.mixed_precision.set_global_policy(POLICIES[precision])
    keras.utils.set_random_seed(0)
    features = yopo.build_feature_model(box)
    model = yopo.build_classifier(features, 5)
    optimizer = keras.optimizers.Nadam(1e-3)
    if precision == "float16":  # the engine scales the loss in float16 too
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalHinge())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, box, box, box, 1)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[np.arange(batch) % 5]
    t0 = time.perf_counter()
    features.predict_on_batch(x)
    model.train_on_batch(x, y)
    compile_s = time.perf_counter() - t0
    fwd = rate(lambda: np.asarray(features.predict_on_batch(x)), batch, seconds)
    train = rate(lambda: float(np.asarray(model.train_on_batch(x, y))), batch, seconds)
    keras.mixed_precision.set_global_policy("float32")
    return {"box": box, "precision": precision, "batch": batch, "forward_per_s": round(fwd, 1),
            "train_per_s": round(train, 1), "first_calls_s": round(compile_s, 1),
            "gflop_forward_per_subtomogram": round(yopo.forward_gflop(box, yopo.PAPER_WIDTHS,
                                                                      yopo.PAPER_FEATURE_DIM), 2)}


def device_name():
    import keras
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax
            return str(jax.devices()[0].device_kind)
        if backend == "torch":
            import torch
            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        import tensorflow as tf
        return str(tf.config.list_physical_devices("GPU") or "cpu")
    except Exception as exc:  # a report line, not a result: say what failed
        return f"unknown ({exc})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--box", default="24,32")
    p.add_argument("--precisions", default="float32,bfloat16,float16")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--out")
    args = p.parse_args()
    import keras
    rows = []
    for box in [int(b) for b in args.box.split(",")]:
        for precision in args.precisions.split(","):
            row = bench(box, precision, args.batch, args.seconds)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"backend": keras.backend.backend(), "keras": keras.__version__,
              "device": device_name(), "rows": rows,
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "command": " ".join([os.path.basename(sys.executable)] + sys.argv)}
    print("| box | precision | forward /s | training /s | first calls (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['box']} | {r['precision']} | {r['forward_per_s']} | {r['train_per_s']} | "
              f"{r['first_calls_s']} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
