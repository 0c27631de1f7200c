"""Decoder for fast cluster inspection (DISCA SI, "Fast visualization of cluster centers
through a decoder"): a network trained from the learned 1024-D features back to the
subtomograms; each cluster centre (the mean feature of its members) is then decoded into a
3D image. Recognisable shapes mark structural clusters; noise clusters decode to a small
globule. TensorFlow is imported only here, only when the decoder runs.
"""
import os
import time

import numpy as np

from .. import contract
from ..errors import EngineError
from ..io import mrc
from ..io.jsonfile import write_json

# Cost caps: at most `epochs` epochs, `max_steps` gradient steps and `max_seconds` of training,
# on at most `max_samples` subtomograms (a random subset), whichever is reached first.
# Steps and seconds left as None are sized by the number of training subtomograms (budget()).
DEFAULTS = {"epochs": 200, "max_steps": None, "max_seconds": None, "max_samples": 4000,
            "batch_size": 32, "learning_rate": 3e-3, "seed": 0}
# A fixed 400 steps / 60 s let the loss barely move at N = 2,000 (10% of an epoch per
# 1,000 subtomograms on a loaded CPU; benchmarks/results/report.md). The budget below gives
# PASSES passes over the training set, at least MIN_STEPS steps, and SECONDS_PER_SAMPLE of
# wall time per training subtomogram between MIN_SECONDS and MAX_SECONDS.
PASSES, MIN_STEPS = 20, 400
MIN_SECONDS, SECONDS_PER_SAMPLE, MAX_SECONDS = 60.0, 0.15, 900.0


def budget(n_train, batch_size):
    """(max_steps, max_seconds) for ``n_train`` training subtomograms."""
    steps = max(MIN_STEPS, PASSES * int(np.ceil(n_train / batch_size)))
    seconds = min(MAX_SECONDS, max(MIN_SECONDS, SECONDS_PER_SAMPLE * n_train))
    return steps, seconds
CHANNELS = (32, 16, 8)


def build_decoder(n_features, box, keras):
    """Dense -> (b, b, b, 32) -> three stride-2 Conv3DTranspose -> crop to box^3.

    b = ceil(box / 8), so the network reaches 8b >= box and crops the excess (any box size)."""
    L = keras.layers
    b = int(np.ceil(box / 8))
    crop = 8 * b - box
    inp = keras.Input((n_features,))
    x = L.Dense(b ** 3 * CHANNELS[0], activation="elu")(inp)
    x = L.Reshape((b, b, b, CHANNELS[0]))(x)
    for ch in CHANNELS:
        x = L.Conv3DTranspose(ch, 3, strides=2, padding="same", activation="elu")(x)
    x = L.Conv3D(1, 3, padding="same")(x)
    if crop:
        x = L.Cropping3D(((crop // 2, crop - crop // 2),) * 3)(x)
    return keras.Model(inp, x, name="disca_decoder")


def _load_training_data(run, features, max_samples, rng):
    n = len(run.labels)
    idx = np.sort(rng.choice(n, size=max_samples, replace=False)) if n > max_samples else np.arange(n)
    vols = run.read_members(idx)
    if vols.shape[1:] != (run.box_size,) * 3:
        raise EngineError(f"subtomograms have shape {vols.shape[1:]}, expected {run.box_size}^3: "
                          "all members of a run must share one box size")
    return features[idx], vols[..., None]


def _standardised_features(run):
    """The chosen iteration's features, standardised (the centres use the same transform)."""
    feat_path = os.path.join(run.dir, "features.npy")
    if not os.path.isfile(feat_path):
        raise EngineError(f"{feat_path} missing: the decoder needs the features of the chosen "
                          "iteration (rerun cluster, or use --no-decoder)")
    features = np.load(feat_path).astype(np.float32)
    if len(features) != len(run.labels):
        raise EngineError(f"features.npy has {len(features)} rows, clusters.star {len(run.labels)}: "
                          "the folder mixes two runs; rerun cluster")
    mu, sd = features.mean(axis=0), features.std(axis=0) + 1e-6
    return (features - mu) / sd


def _fit(model, x, y, opts, epochs, progress, keras):
    """Train within the step and time caps; returns (losses per epoch, loss curve, seconds)."""
    curve = []
    if progress:
        from ..progress import Progress
        progress = Progress("report: decoder training", total=epochs)

    class _Budget(keras.callbacks.Callback):
        """Stops at the time cap (checked every batch) and prints progress per epoch."""

        def on_train_batch_end(self, batch, logs=None):
            if time.time() - t_train > float(opts["max_seconds"]):
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            # the loss curve: (gradient steps so far, mean loss of this epoch)
            curve.append((int(self.model.optimizer.iterations.numpy()), float(logs.get("loss", np.nan))))
            if progress:
                progress.update(epoch + 1, extra=f"loss {logs.get('loss', float('nan')):.4f}")

    t_train = time.time()
    hist = model.fit(x, y, epochs=epochs, batch_size=int(opts["batch_size"]),
                     shuffle=True, verbose=0, callbacks=[_Budget()])
    return [float(v) for v in hist.history["loss"]], curve, time.time() - t_train


def train_and_decode(run, outdir, progress=False, **options):
    """Train the decoder on (features, subtomograms), decode every cluster centre.

    Writes ``outdir/decoded/class_NNN.mrc`` and ``outdir/decoder.json``; returns
    ({cluster: volume}, info dict)."""
    opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    z = _standardised_features(run)
    rng = np.random.default_rng(opts["seed"])
    x, y = _load_training_data(run, z, int(opts["max_samples"]), rng)
    steps, seconds = budget(len(x), int(opts["batch_size"]))
    opts["max_steps"] = steps if opts["max_steps"] is None else opts["max_steps"]
    opts["max_seconds"] = seconds if opts["max_seconds"] is None else opts["max_seconds"]

    t0 = time.time()
    import keras  # lazily: TensorFlow backend
    keras.utils.set_random_seed(int(opts["seed"]))
    model = build_decoder(z.shape[1], run.box_size, keras)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(opts["learning_rate"])),
                  loss="mse")
    t_import = time.time() - t0
    steps_per_epoch = int(np.ceil(len(x) / int(opts["batch_size"])))
    epochs = max(1, min(int(opts["epochs"]), int(np.ceil(int(opts["max_steps"]) / steps_per_epoch))))
    losses, curve, train_seconds = _fit(model, x, y, opts, epochs, progress, keras)
    steps_done = int(model.optimizer.iterations.numpy())

    centres = {c: z[run.labels == c].mean(axis=0) for c in run.classes}
    out = model.predict(np.stack([centres[c] for c in run.classes]), verbose=0)[..., 0]
    decoded = {c: out[i] for i, c in enumerate(run.classes)}
    for c, vol in decoded.items():
        mrc.write_volume(os.path.join(outdir, "decoded", contract.average_name(c)), vol, run.voxel_size)
    info = {"input": f"features.npy ({z.shape[1]}-D features of the chosen iteration, standardised)",
            "target": "member subtomograms", "loss": "mse", "n_train": int(len(x)),
            "n_total": int(len(run.labels)), "box_size": int(run.box_size),
            "epochs_run": len(losses), "epochs_planned": epochs, "steps": steps_done,
            "max_steps": int(opts["max_steps"]),
            "max_seconds": float(opts["max_seconds"]), "batch_size": int(opts["batch_size"]),
            "learning_rate": float(opts["learning_rate"]), "loss_first": losses[0],
            "loss_last": losses[-1], "variance_of_targets": float(np.var(y)),
            "seconds_train": round(train_seconds, 2), "seconds_setup": round(t_import, 2),
            "stopped_by": _stopped_by(len(losses), epochs, steps_done, opts, train_seconds),
            "loss_curve": {"steps": [c[0] for c in curve], "loss": [c[1] for c in curve]},
            "parameters": int(model.count_params()),
            "decoded": {str(c): "decoded/" + contract.average_name(c) for c in run.classes}}
    write_json(os.path.join(outdir, "decoder.json"), info)
    return decoded, info


def _stopped_by(epochs_run, epochs, steps_done, opts, seconds):
    """Which cap ended training, for the report."""
    if seconds >= float(opts["max_seconds"]) and epochs_run < epochs:
        return "time"
    if steps_done >= int(opts["max_steps"]):
        return "steps"
    return "epochs"
