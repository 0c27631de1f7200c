#!/usr/bin/env bash
# GPU checks of issue 11, for a session that is lent a GPU machine (about 6-9 minutes on one
# modern GPU). Writes everything under ${OUT:-benchmarks/results/gpu}; commit that folder.
#
#   1. paper YOPO forward and training per second at 24^3 and 32^3, float32 and mixed
#      precision (bench_network.py; float16 = mixed_float16, bfloat16 = mixed_bfloat16);
#   2. one `paper` iteration at N = 2,000 (simulated 24^3), split by stage
#      (bench_scaling.py iteration, with --preset-override paper);
#   3. the multi-device tests on two logical GPUs carved out of GPU 0 (DISCA_GPU_SPLIT=2),
#      i.e. tests/engine/test_multidevice.py under MirroredStrategy on a GPU.
#
# Needs an engine environment with the CUDA build of TensorFlow (the device machine has no
# internet: bring it, or point ENGINE_PY at one): ENGINE_PY=/path/to/bin/python.
# Without one, only the network is measured, through Keras on JAX with the machine's own
# python3 (bench_network_keras.py; keras, namex and optree installed beforehand, e.g. from
# carried wheels): how the lent H200 was measured on 2026-11-30 (docs/clustering.md).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$REPO/benchmarks/results/gpu}"
PY="${ENGINE_PY:-$(ls -d "$REPO"/.work/scipion-home/software/em/disca-*/bin/python 2>/dev/null | head -1)}"
mkdir -p "$OUT"
cd "$REPO"
log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/gpu_check.log"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv | tee "$OUT/nvidia-smi.csv"
keras_on_jax() {
    log "no TensorFlow with a GPU here: the network alone, through Keras on JAX"
    PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax timeout 420 python3 \
        benchmarks/bench_network_keras.py --box 24,32 --precisions float32,bfloat16,float16 \
        --seconds 3 --batch 64 --out "$OUT/network_paper_keras_jax.json" 2>&1 | tee -a "$OUT/gpu_check.log"
    exit 3
}
[ -x "$PY" ] || keras_on_jax
"$PY" - <<'EOF' || keras_on_jax
import tensorflow as tf, sys
gpus = tf.config.list_physical_devices("GPU")
print("tensorflow", tf.__version__, "cuda build", tf.test.is_built_with_cuda(), "GPUs", gpus)
sys.exit(0 if gpus else 1)
EOF
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
uptime | tee -a "$OUT/gpu_check.log"

log "1/3 network throughput (paper YOPO, 24^3 and 32^3, float32 / float16 / bfloat16)"
for box in 24 32; do
    timeout 240 "$PY" benchmarks/bench_network.py --presets paper --box "$box" --seconds 5 --batch 64 \
        --precisions float32,float16,bfloat16 --out "$OUT/network_paper_${box}.json" \
        2>&1 | tail -8 | tee -a "$OUT/gpu_check.log"
done

log "2/3 one paper iteration at N = 2,000 (24^3)"
SIM="$OUT/sim2000"
if [ ! -f "$SIM/particles.star" ]; then
    timeout 300 "$PY" -m disca_engine simulate subtomos "$SIM" --n-per-class 400 --snr 0.1 --size 24 --stack \
        > "$OUT/simulate.log" 2>&1 || log "simulate failed: $(tail -1 "$OUT/simulate.log")"
fi
timeout 300 "$PY" benchmarks/bench_scaling.py iteration --preset paper --star "$SIM/particles.star" \
    --work "$OUT/work2000" --out "$OUT/iteration_paper_n2000.json" --threads 8 \
    > "$OUT/iteration_paper_n2000.log" 2>&1 || log "paper iteration failed: $(tail -1 "$OUT/iteration_paper_n2000.log")"
rm -rf "$OUT/work2000" "$SIM"

log "3/3 multi-device tests on 2 logical GPUs (MirroredStrategy)"
DISCA_TEST_SPLIT_ENV=DISCA_GPU_SPLIT timeout 300 "$PY" -m pytest tests/engine/test_multidevice.py -q \
    -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/multidevice_2_logical_gpus.txt"
uptime | tee -a "$OUT/gpu_check.log"
log "done: results in $OUT"
