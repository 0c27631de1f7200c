"""Runtime set-up (devices, threads, precision, determinism) and the compiled network steps.

``configure_runtime`` must run before TensorFlow is first imported (it sets
CUDA_VISIBLE_DEVICES). :class:`Network` builds the model, the optimizers and the three
``tf.function`` graphs (features, training step, head-only step) ONCE per run; K changes
and learning-rate decay only assign variables, they never retrace.
"""
import os

import numpy as np

from ..contract import PRECISIONS
from ..errors import EngineError


def log(message):
    print(message, flush=True)


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# Split the CPU into this many logical devices (read before TensorFlow initialises): the
# multi-device code path (MirroredStrategy, global batch split across replicas) then runs
# without GPUs. For tests and debugging; it gives no speed-up on its own.
CPU_DEVICES_ENV = "DISCA_CPU_DEVICES"
# The same for the first GPU (benchmarks/gpu_check.sh: MirroredStrategy on a one-GPU machine);
# each logical GPU gets GPU_SPLIT_MB of memory.
GPU_SPLIT_ENV, GPU_SPLIT_MB = "DISCA_GPU_SPLIT", 16000


def parse_gpu_ids(gpus):
    """'0, 1' -> '0,1'; None/'' -> None. Anything but comma-separated ids >= 0 is an error."""
    if gpus is None or str(gpus).strip() == "":
        return None
    ids = [v.strip() for v in str(gpus).split(",")]
    if not all(v.isdigit() for v in ids) or len(set(ids)) != len(ids):
        raise EngineError(f"--gpus {gpus}: give distinct GPU ids separated by commas, e.g. 0 or 0,1 "
                          "(nvidia-smi lists them)")
    return ",".join(ids)


def configure_runtime(threads=None, gpus=None, seed=0, deterministic=True):
    """Environment settings that must precede the TensorFlow import, then TF settings.
    Raises EngineError when ``gpus`` names GPUs that TensorFlow cannot see."""
    gpu_ids = parse_gpu_ids(gpus)
    if gpu_ids is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_ids
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf
    split_cpu(tf, os.environ.get(CPU_DEVICES_ENV))
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        except RuntimeError:
            pass  # already initialised in this process (tests): keep the first setting
    # XLA jit is 3x slower than oneDNN on these CPUs (method section 9): keep it off
    tf.config.optimizer.set_jit(False)
    check_gpus(tf, gpu_ids)
    split_first_gpu(tf, os.environ.get(GPU_SPLIT_ENV))
    for gpu in tf.config.list_physical_devices("GPU")[1 if os.environ.get(GPU_SPLIT_ENV) else 0:]:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    seed_everything(seed, deterministic)
    return tf


def split_cpu(tf, count):
    """``count`` logical CPU devices (CPU_DEVICES_ENV); must run before TF initialises."""
    if not count:
        return
    try:
        n = int(count)
        assert n >= 1
    except (ValueError, AssertionError):
        raise EngineError(f"{CPU_DEVICES_ENV}={count}: give a whole number of logical CPU devices >= 1")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # initialised earlier in this process: fine if it already has n
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise EngineError(f"{CPU_DEVICES_ENV}={n}: TensorFlow was already initialised with {have} "
                              "CPU device(s) in this process; set the variable before starting Python")


def split_first_gpu(tf, count):
    """``count`` logical GPUs on the first GPU (GPU_SPLIT_ENV); before TF initialises."""
    if not count:
        return
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus or not str(count).isdigit() or int(count) < 1:
        raise EngineError(f"{GPU_SPLIT_ENV}={count}: needs a whole number >= 1 and a visible GPU")
    config = tf.config.LogicalDeviceConfiguration(memory_limit=GPU_SPLIT_MB)
    tf.config.set_logical_device_configuration(gpus[0], [config] * int(count))


def check_gpus(tf, gpu_ids):
    """--gpus must name GPUs that exist (CUDA stops at the first unknown id) in a CUDA build."""
    if gpu_ids is None:
        return
    wanted = gpu_ids.split(",")
    seen = tf.config.list_physical_devices("GPU")
    if not tf.test.is_built_with_cuda():
        raise EngineError(f"--gpus {gpu_ids}: this TensorFlow is a CPU-only build; drop --gpus to run on "
                          "the CPU, or install the CUDA build (DISCA_CUDA=1 bash scripts/setup_env.sh)")
    if not seen:
        raise EngineError(f"--gpus {gpu_ids}: TensorFlow (CUDA build) sees no GPU; check nvidia-smi and "
                          "the NVIDIA driver, or drop --gpus to run on the CPU")
    if len(seen) < len(wanted):
        raise EngineError(f"--gpus {gpu_ids}: only {len(seen)} of these GPUs exist; give ids that "
                          "nvidia-smi lists")


def seed_everything(seed, deterministic=True):
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # noqa: BLE001 - older TF: determinism flag missing
            pass


# Measured (benchmarks/results/network.md): paper YOPO forward 15.4/s float32 vs 10.3/s
# mixed_bfloat16, training 4.3/s vs 3.1/s on a Zen 4 with avx512_bf16, TF 2.21. The method
# file reports 26/s for bfloat16 on the same CPUs; until that is reproduced, auto stays on
# float32 on CPUs (GPUs with compute capability >= 8 still get bfloat16).
CPU_BF16_AUTO = False
SMALL_NETWORK_GFLOP = 2.0  # below this forward cost, CPU bfloat16 kernels were measured slower


def choose_precision(precision="auto", forward_gflop=None):
    """'float32' | 'bfloat16' | 'float16' and a sentence saying why. ``auto`` gives bfloat16 on
    GPUs of compute capability >= 8 and float32 on CPUs: bfloat16 was measured slower there,
    1.5x for the paper network and 1.7-2.2x for small ones (``forward_gflop`` below
    SMALL_NETWORK_GFLOP), even with avx512_bf16 (benchmarks/results/network.md);
    CPU_BF16_AUTO switches CPUs with bfloat16 instructions back to bfloat16."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if precision not in PRECISIONS:
        raise EngineError(f"--precision {precision}: choose {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision, "requested"
    if gpus:
        caps = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            caps.append(details.get("compute_capability", (0, 0)))
        if caps and min(caps) >= (8, 0):
            return "bfloat16", f"GPU compute capability {min(caps)} supports bfloat16"
        return "float32", f"GPU compute capability {min(caps) if caps else '?'} lacks fast bfloat16"
    flags = cpu_flags()
    fast = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if fast and forward_gflop is not None and forward_gflop < SMALL_NETWORK_GFLOP:
        return "float32", (f"CPU supports {', '.join(fast)} but this network is small "
                           f"({forward_gflop:.2f} GFLOP/forward): float32 is faster")
    if fast and not CPU_BF16_AUTO:
        return "float32", (f"CPU supports {', '.join(fast)}, but bfloat16 YOPO measured 1.5x slower "
                           "than float32 with this TensorFlow build; pass --precision bfloat16 to try it")
    if fast:
        return "bfloat16", f"CPU supports {', '.join(fast)}"
    return "float32", "CPU has no avx512_bf16/amx_bf16"


def set_precision(precision):
    import keras
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[precision]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def make_strategy():
    """MirroredStrategy over all visible GPUs when there are several (or over the logical
    CPU devices of CPU_DEVICES_ENV), else the default one-device strategy."""
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([g.name for g in gpus]), f"MirroredStrategy over {len(gpus)} GPUs"
    if gpus:
        return tf.distribute.get_strategy(), "one GPU"
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) > 1:
        return (tf.distribute.MirroredStrategy([c.name for c in cpus]),
                f"MirroredStrategy over {len(cpus)} logical CPU devices")
    return tf.distribute.get_strategy(), "CPU"


def pad_to_replicas(replicas, *arrays):
    """Repeat the last rows so that the batch splits evenly over the replicas."""
    extra = (-len(arrays[0])) % replicas
    if not extra:
        return arrays
    return tuple(np.concatenate([a, np.repeat(a[-1:], extra, axis=0)]) for a in arrays)


def split_batch(strategy, *tensors):
    """Per-replica slices of global-batch tensors (batch divisible by the replica count)."""
    import tensorflow as tf

    def part(ctx, t):
        return tf.split(t, ctx.num_replicas_in_sync)[ctx.replica_id_in_sync_group]
    return [strategy.experimental_distribute_values_from_function(lambda ctx, t=t: part(ctx, t))
            for t in tensors]


def inference_function(strategy, model):
    """Compiled ``x -> model(x, training=False)``, data parallel over the strategy's replicas:
    each replica gets its slice of the batch and the outputs come back in input order. The
    maths per subtomogram is that of one device (inference uses BN's moving statistics)."""
    import tensorflow as tf
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: np.asarray(fn(x), np.float32)

    @tf.function(reduce_retracing=True)
    def run(x):
        out = strategy.run(lambda xr: model(xr, training=False), args=tuple(split_batch(strategy, x)))
        return tf.concat(strategy.experimental_local_results(out), axis=0)

    def call(x):
        n = len(x)
        (padded,) = pad_to_replicas(replicas, np.asarray(x, np.float32))
        return np.asarray(run(padded), np.float32)[:n]
    return call


_INIT_ATTRS = {"kernel": "kernel_initializer", "bias": "bias_initializer",
               "gamma": "gamma_initializer", "beta": "beta_initializer",
               "moving_mean": "moving_mean_initializer",
               "moving_variance": "moving_variance_initializer"}


class Network:
    """YOPO classifier + optimizers + compiled steps, built once per run."""

    def __init__(self, cfg, box, precision, strategy):
        import keras
        import tensorflow as tf
        from . import yopo
        self.cfg, self.box, self.precision, self.strategy = cfg, box, precision, strategy
        self.k_max = max(cfg["k_range"])
        self.replicas = strategy.num_replicas_in_sync
        with strategy.scope():
            self.features_model = yopo.build_feature_model(
                box, cfg["widths"], cfg["feature_dim"], cfg["dropout"])
            self.model = yopo.build_classifier(self.features_model, self.k_max)
            dense, soft = yopo.head_layers(self.model)
            f_in = keras.Input((cfg["feature_dim"],), name="fixed_features")
            self.head_model = keras.Model(f_in, soft(dense(f_in)), name="head_only")
            self.optimizer = self._optimizer(cfg["learning_rate"])
            self.head_optimizer = self._optimizer(cfg["head_learning_rate"])
            self.optimizer.build(self.model.trainable_variables)
            self.head_optimizer.build(self.head_model.trainable_variables)
        # fresh optimizer states (Nadam's u_product starts at 1, not 0) for resets
        self._fresh = {id(o): [np.array(v.numpy()) for v in o.variables]
                       for o in (self.optimizer, self.head_optimizer)}
        self._loss = keras.losses.CategoricalHinge(reduction="sum")
        self._features_fn = inference_function(strategy, self.features_model)
        self._train_fn = tf.function(self._distributed(self._train_step), reduce_retracing=True)
        self._head_fn = tf.function(self._distributed(self._head_step), reduce_retracing=True)

    # -- building blocks -------------------------------------------------------------------
    def _optimizer(self, lr):
        import keras
        opt = keras.optimizers.Nadam(learning_rate=float(lr))
        if self.precision == "float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        return opt

    def _step(self, model, optimizer, x, y, global_batch):
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
        from ..io.atomic import atomic_path
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
