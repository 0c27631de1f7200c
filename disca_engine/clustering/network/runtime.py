"""Runtime set-up of the network's Keras backend: devices, threads, precision, determinism,
and the data parallel inference function.

The backend is Keras's own setting, ``KERAS_BACKEND``: ``tensorflow`` (the bundled default)
or ``jax`` (a GPU machine with JAX but no TensorFlow). ``configure_runtime`` must run before
Keras and the backend are first imported (it sets CUDA_VISIBLE_DEVICES and, for JAX,
XLA_FLAGS). MirroredStrategy (several GPUs, DISCA_CPU_DEVICES, DISCA_GPU_SPLIT) is
TensorFlow's; under JAX the network runs on one device (docs/accelerators.md).
"""
import contextlib
import importlib.util
import os
import sys

import numpy as np

from ...contract import PRECISIONS
from ...errors import EngineError
from ..align.backend import jax_gpus


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


KERAS_BACKENDS = ("tensorflow", "jax")
DEFAULT_KERAS_BACKEND = "tensorflow"


def keras_backend():
    """The network's Keras backend: ``KERAS_BACKEND`` (set to the default when unset).
    Raises EngineError when it is unknown, not installed, or when Keras was already imported
    with another one (Keras reads the variable once, at import)."""
    name = os.environ.setdefault("KERAS_BACKEND", DEFAULT_KERAS_BACKEND)
    if name not in KERAS_BACKENDS:
        raise EngineError(f"KERAS_BACKEND={name}: the engine runs on {' or '.join(KERAS_BACKENDS)}")
    if importlib.util.find_spec(name) is None:
        raise EngineError(f"KERAS_BACKEND={name}: {name} is not installed in this environment; "
                          f"install it (pip install {name}) or unset KERAS_BACKEND for "
                          f"{DEFAULT_KERAS_BACKEND}")
    if "keras" in sys.modules:
        active = sys.modules["keras"].backend.backend()
        if active != name:
            raise EngineError(f"KERAS_BACKEND={name}, but Keras was already imported with {active} "
                              "in this process; set the variable before starting Python")
    return name


def configure_runtime(threads=None, gpus=None, seed=0, deterministic=True):
    """Environment settings that must precede the backend's import, then its settings.
    Raises EngineError when ``gpus`` names GPUs that the backend cannot see. Returns the
    backend module (tensorflow or jax)."""
    gpu_ids = parse_gpu_ids(gpus)
    if gpu_ids is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_ids
    if keras_backend() == "jax":
        return configure_jax(threads, gpu_ids, seed, deterministic)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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


def configure_jax(threads, gpu_ids, seed, deterministic):
    """JAX's counterparts of the TensorFlow settings: XLA flags (read at JAX's first use)
    for one CPU thread and deterministic GPU kernels; the TensorFlow-only device splits are
    refused rather than ignored."""
    for name in (CPU_DEVICES_ENV, GPU_SPLIT_ENV):
        if os.environ.get(name):
            raise EngineError(f"{name} splits devices for TensorFlow's MirroredStrategy; unset it "
                              "or use KERAS_BACKEND=tensorflow")
    flags = os.environ.get("XLA_FLAGS", "").split()
    if threads == 1:  # XLA has no thread count, only these (measured: still ~1.4 cores)
        flags += ["--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    elif threads:
        log(f"KERAS_BACKEND=jax: --threads {threads} is not applied (XLA sizes its CPU thread "
            "pool itself; only --threads 1 is honoured)")
    if deterministic:
        flags.append("--xla_gpu_deterministic_ops=true")
    os.environ["XLA_FLAGS"] = " ".join(dict.fromkeys(flags))
    import jax
    gpus = jax_gpus() if gpu_ids is not None else None
    if gpu_ids is not None and not gpus:
        raise EngineError(f"--gpus {gpu_ids}: JAX sees no GPU (a CPU-only jaxlib, or no CUDA "
                          "driver); install jax[cuda12] or drop --gpus to run on the CPU")
    if gpu_ids is not None and len(gpus) < len(gpu_ids.split(",")):
        raise EngineError(f"--gpus {gpu_ids}: only {len(gpus)} of these GPUs exist; give "
                          "ids that nvidia-smi lists")
    seed_everything(seed, deterministic)
    return jax


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
    keras.utils.set_random_seed(int(seed))
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf
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
    if precision not in PRECISIONS:
        raise EngineError(f"--precision {precision}: choose {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision, "requested"
    caps = gpu_capabilities()
    if caps:
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


def gpu_capabilities():
    """Compute capability (major, minor) of each GPU the backend sees; [] on CPUs."""
    import keras
    if keras.backend.backend() == "jax":
        return [tuple(int(v) for v in str(getattr(g, "compute_capability", "0.0")).split(".")[:2])
                for g in jax_gpus()]
    import tensorflow as tf
    return [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")]


def set_precision(precision):
    import keras
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[precision]
    keras.mixed_precision.set_global_policy(policy)
    return policy


class OneDevice:
    """The strategy of the JAX backend: one device (JAX's default: the first GPU, else the
    CPU); the network code asks a strategy only for its replicas and its scope."""
    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def make_strategy():
    """MirroredStrategy over all visible GPUs when there are several (or over the logical
    CPU devices of CPU_DEVICES_ENV), else the default one-device strategy; under JAX
    always one device, and the run log says so when more GPUs are visible."""
    import keras
    if keras.backend.backend() == "jax":
        gpus = jax_gpus()
        if len(gpus) > 1:
            return OneDevice(), (f"JAX on the first of {len(gpus)} visible GPUs (several GPUs need "
                                 "KERAS_BACKEND=tensorflow)")
        return OneDevice(), "JAX on one GPU" if gpus else "JAX on the CPU"
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
    import keras
    if keras.backend.backend() == "jax":
        from .jax_steps import inference
        return inference(model)
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
