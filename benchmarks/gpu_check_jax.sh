#!/usr/bin/env bash
# Issue 26's GPU checks on a machine with JAX but no TensorFlow (how the lent GPU machines
# come): under 10 minutes on one H100/H200. Writes everything under ${OUT:-benchmarks/results/gpu_jax};
# commit that folder.
#
#   1. the alignment kernels, numpy (the machine's CPU) against jax (the GPU), 24^3 and 32^3,
#      on the same data (bench_alignment_backend.py);
#   2. the default (`auto`) end to end on simulated 24^3 subtomograms, N = ${N_RUN:-2000},
#      with KERAS_BACKEND=jax and DISCA_ALIGN_BACKEND=jax: the run log's stage times.
#
# python3 (or PY=...) must import jax, keras, scipy, scikit-learn and mrcfile; the preflight
# names what is missing (carry wheels under shared/ and pip install them first).
# Check it on a CPU first: OUT=/tmp/g N_RUN=100 DISCA_ALIGN_BACKEND=jax bash benchmarks/gpu_check_jax.sh
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$REPO/benchmarks/results/gpu_jax}"
PY="${PY:-python3}"
N_RUN="${N_RUN:-2000}"
mkdir -p "$OUT"
cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax
export DISCA_ALIGN_BACKEND="${DISCA_ALIGN_BACKEND:-auto}"
log() { echo "[gpu_check_jax $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/gpu_check_jax.log"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv \
    > "$OUT/nvidia-smi.csv" 2>&1 || log "nvidia-smi: none (a CPU check run)"
"$PY" - <<'EOF' 2>&1 | tee -a "$OUT/gpu_check_jax.log"
import importlib.util, sys
missing = [m for m in ("jax", "keras", "scipy", "sklearn", "mrcfile", "numpy")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("missing python modules: " + ", ".join(missing) + " (pip install their wheels first)")
import jax
print("jax", jax.__version__, "devices", jax.devices())
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2
uptime | tee -a "$OUT/gpu_check_jax.log"

log "1/2 alignment kernels, numpy vs jax, 24^3 and 32^3"
DISCA_ALIGN_BACKEND=jax timeout 240 "$PY" benchmarks/bench_alignment_backend.py --box 24,32 \
    --out "$OUT/alignment_backend.json" 2>&1 | tail -14 | tee -a "$OUT/gpu_check_jax.log"

log "2/2 the default end to end, N = $N_RUN (24^3), network and scans on jax"
SIM="$OUT/work/sim"
rm -rf "$OUT/work"
timeout 120 "$PY" -m disca_engine simulate subtomos "$SIM" --classes 5 \
    --n-per-class $((N_RUN / 5)) --snr 0.1 --seed 0 > "$OUT/simulate.log" 2>&1 \
    || { log "simulate failed: $(tail -1 "$OUT/simulate.log")"; exit 1; }
start=$(date +%s)
timeout 420 "$PY" -m disca_engine cluster --input "$SIM/particles.star" --output "$OUT/work/run" \
    > "$OUT/cluster_n${N_RUN}.log" 2>&1
rc=$?
log "cluster rc=$rc in $(( $(date +%s) - start )) s; stage lines:"
grep -E "scans on|JAX|alignment:|alignment round|merge test|relabel|junk split|iteration|cluster quality|K=" \
    "$OUT/cluster_n${N_RUN}.log" | tail -40 | tee -a "$OUT/gpu_check_jax.log"
rm -rf "$OUT/work"
exit $rc
