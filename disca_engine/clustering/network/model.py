"""The DISCA network of a run (:class:`Network`): the YOPO-like model, the optimizers and the
three compiled graphs (features, training step, head-only step), built ONCE per run;
K changes and learning-rate decay only assign variables, they never retrace. The graphs are
``tf.function``s under Keras's TensorFlow backend and ``jax.jit`` functions under its JAX
backend (``jax_steps``)."""
import os

import numpy as np

from ...errors import EngineError
from .runtime import inference_function, pad_to_replicas, split_batch


_INIT_ATTRS = {"kernel": "kernel_initializer", "bias": "bias_initializer",
               "gamma": "gamma_initializer", "beta": "beta_initializer",
               "moving_mean": "moving_mean_initializer",
               "moving_variance": "moving_variance_initializer"}


class Network:
    """YOPO classifier + optimizers + compiled steps, built once per run."""

    def __init__(self, settings, k_max, box, precision, strategy):
        """``settings``: ``settings.Network``; ``k_max``: units of the head (the largest K
        of the run's K range; a smaller K masks the others)."""
        import keras
        from . import yopo
        self.settings, self.box, self.precision, self.strategy = settings, box, precision, strategy
        self.k_max = int(k_max)
        self.replicas = strategy.num_replicas_in_sync
        with strategy.scope():
            self.features_model = yopo.build_feature_model(
                box, list(settings.widths), settings.feature_dim, settings.dropout)
            self.model = yopo.build_classifier(self.features_model, self.k_max)
            dense, soft = yopo.head_layers(self.model)
            f_in = keras.Input((settings.feature_dim,), name="fixed_features")
            self.head_model = keras.Model(f_in, soft(dense(f_in)), name="head_only")
            self.optimizer = self._optimizer(settings.learning_rate)
            self.head_optimizer = self._optimizer(settings.head_learning_rate)
            self.optimizer.build(self.model.trainable_variables)
            self.head_optimizer.build(self.head_model.trainable_variables)
        # fresh optimizer states (Nadam's u_product starts at 1, not 0) for resets
        self._fresh = {id(o): [np.array(v.numpy()) for v in o.variables]
                       for o in (self.optimizer, self.head_optimizer)}
        self._loss = keras.losses.CategoricalHinge(reduction="sum")
        self._features_fn = inference_function(strategy, self.features_model)
        if keras.backend.backend() == "jax":
            from .jax_steps import train_step
            self._train_fn = train_step(self.model, self.optimizer, self._loss)
            self._head_fn = train_step(self.head_model, self.head_optimizer, self._loss)
        else:
            import tensorflow as tf
            self._train_fn = tf.function(self._distributed(self._train_step), reduce_retracing=True)
            self._head_fn = tf.function(self._distributed(self._head_step), reduce_retracing=True)

    # -- building blocks -------------------------------------------------------------------
    def _optimizer(self, lr):
        import keras
        opt = keras.optimizers.Nadam(learning_rate=float(lr))
        if self.precision == "float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        return opt

    def _step(self, model, optimizer, x, y, global_batch):  # TensorFlow's; JAX: jax_steps
        import tensorflow as tf
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = self._loss(y, probs) / tf.cast(global_batch, tf.float32)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def _train_step(self, x, y, global_batch):
        return self._step(self.model, self.optimizer, x, y, global_batch)

    def _head_step(self, f, y, global_batch):
        return self._step(self.head_model, self.head_optimizer, f, y, global_batch)

    def _distributed(self, step):
        """One step data parallel: each replica its slice of the global batch, the loss
        (already divided by the global batch size) summed over replicas. BatchNorm uses
        each replica's own batch statistics, as Keras does under MirroredStrategy."""
        import tensorflow as tf
        strategy = self.strategy
        if self.replicas == 1:
            return step

        def run(x, y, global_batch):
            xd, yd = split_batch(strategy, x, y)
            losses = strategy.run(step, args=(xd, yd, global_batch))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        return run

    def _pad(self, *arrays):
        """Only the final partial batch of an epoch is padded, by at most replicas-1 rows."""
        return pad_to_replicas(self.replicas, *arrays)

    # -- public API ------------------------------------------------------------------------
    def features(self, volumes):
        """Features (B, feature_dim) float32 of a batch of volumes (B, s, s, s), inference mode."""
        return self._features_fn(np.asarray(volumes, np.float32)[..., None])

    def train_batch(self, volumes, targets):
        x, y = self._pad(np.asarray(volumes, np.float32)[..., None], self._targets(targets))
        return float(self._train_fn(x, y, np.float32(len(x))))

    def train_head_batch(self, features, targets):
        f, y = self._pad(np.asarray(features, np.float32), self._targets(targets))
        return float(self._head_fn(f, y, np.float32(len(f))))

    def _targets(self, targets):
        """(B, K) smoothed targets -> (B, k_max) with zeros for the masked units."""
        t = np.zeros((len(targets), self.k_max), np.float32)
        t[:, :targets.shape[1]] = targets
        return t

    def predict_volumes(self, volumes):
        """Class probabilities (B, k_max) of a batch of volumes, inference mode."""
        return self.predict_head(self.features(volumes))

    def predict_head(self, features):
        return np.asarray(self.head_model(np.asarray(features, np.float32), training=False))

    def set_learning_rate(self, lr):
        self.optimizer.learning_rate.assign(float(lr))

    def replace_head(self, k, seed):
        """New Dense(k) head (fresh weights) and a fresh head optimizer state."""
        from . import yopo
        yopo.reset_head(self.model, k, seed)
        self._reset_optimizer(self.head_optimizer)

    def _reset_optimizer(self, opt):
        lr = float(opt.learning_rate.numpy())
        for v, value in zip(opt.variables, self._fresh[id(opt)]):
            v.assign(value)
        opt.learning_rate.assign(lr)

    def reinitialise(self, seed):
        """Fresh weights for seed ``seed`` (each layer's own initialisers, re-seeded), zero
        optimizer state and a re-seeded dropout generator: restart r of a run and a run with
        seed+r start from identical states, without rebuilding the compiled graphs."""
        import keras
        from . import yopo
        rng = np.random.default_rng([int(seed), 1])
        for layer in self.model.layers:
            for attr in ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"):
                var = getattr(layer, attr, None) if attr in _INIT_ATTRS else None
                if var is None or not hasattr(var, "assign"):
                    continue
                init = getattr(layer, _INIT_ATTRS[attr])
                config = init.get_config()
                if "seed" in config:
                    config["seed"] = int(rng.integers(2 ** 31))
                init = keras.initializers.get({"class_name": init.__class__.__name__, "config": config})
                var.assign(np.asarray(init(tuple(var.shape), dtype="float32"), dtype=np.float32))
        for n, v in enumerate(self._extra_variables()):
            v.assign(np.array([int(rng.integers(2 ** 31)), 0], dtype=v.dtype))
        for opt in (self.optimizer, self.head_optimizer):
            self._reset_optimizer(opt)
        yopo.set_k(self.model, self.k_max)

    def feature_weights_from(self, source_model):
        """Weights of the feature layers of another classifier, by layer name (the head is
        not taken: a new head is fitted on the first iteration anyway)."""
        weights = {}
        for layer in self.features_model.layers:
            if not layer.weights:
                continue
            try:
                src = source_model.get_layer(layer.name)
            except ValueError:
                raise EngineError(f"--init-model: its network has no layer '{layer.name}'")
            values = src.get_weights()
            if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
                raise EngineError(f"--init-model: layer '{layer.name}' has other shapes than this "
                                  "network; use a model trained with the same preset")
            weights[layer.name] = values
        return weights

    def load_feature_weights(self, weights):
        for name, values in weights.items():
            self.features_model.get_layer(name).set_weights(values)

    @property
    def k(self):
        from . import yopo
        return yopo.get_k(self.model)

    # -- state for checkpoints ---------------------------------------------------------------
    def get_state(self):
        """All weights (incl. BN statistics and dropout seed state) and optimizer slots."""
        return {"model": [np.array(v) for v in self.model.get_weights()],
                "extra": [np.array(v.numpy()) for v in self._extra_variables()],
                "optimizer": [np.array(v.numpy()) for v in self.optimizer.variables],
                "head_optimizer": [np.array(v.numpy()) for v in self.head_optimizer.variables]}

    def set_state(self, state):
        self.model.set_weights(state["model"])
        for group, variables in (("extra", self._extra_variables()),
                                 ("optimizer", self.optimizer.variables),
                                 ("head_optimizer", self.head_optimizer.variables)):
            values = state.get(group)
            if values is None:
                continue
            if len(values) != len(variables):
                raise EngineError(f"checkpoint {group} state does not match this network: "
                                  "delete the checkpoint/ folder or use the same settings")
            for v, value in zip(variables, values):
                v.assign(value)

    def _extra_variables(self):
        """Random-generator states of layers (GaussianDropout) not in get_weights()."""
        weights = {id(v) for v in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]

    def save_model(self, path):
        """Save the whole classifier as .keras (atomic)."""
        from ...io.atomic import atomic_path
        with atomic_path(path) as tmp:
            os.remove(tmp)
            self.model.save(tmp if tmp.endswith(".keras") else tmp + ".keras")
            if not tmp.endswith(".keras"):
                os.replace(tmp + ".keras", tmp)


def load_model(path):
    """Load a saved classifier (.keras) with the custom head layer."""
    import keras
    from .yopo import CUSTOM_OBJECTS
    try:
        return keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure means an unusable model file
        raise EngineError(f"cannot load the trained model {path}: {exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}; give the output folder "
                          "of a finished 'cluster' run")
