"""Projected wall time of the paper's run (198,715 subtomograms of 24^3, `paper` preset) on
this CPU, on 1 GPU and on 4 GPUs, from measured rates plus the stated assumptions below.
Prints a markdown table (docs/scaling.md "Scaling" and benchmarks/results/scaling.md).

Measured inputs (benchmarks/results/):
- network_paper.json: paper YOPO float32 forward and training rates on this CPU (read);
- stats.md: PCA + K search (K = 2..20 selected on 20,000, refit on all) at N = 200,000
  on this CPU (host-side cost, the same with GPUs; constants below);
- augment.md: random rotations of 24^3, about 2,000 per CPU-second (host side);
- gpu/network_paper_keras_jax.json: paper YOPO forward and training rates on a lent
  NVIDIA H200, measured through Keras on JAX (bench_network_keras.py; that machine has no
  TensorFlow): the H200 rows use them, the A100 rows the assumptions below.
Usage: python benchmarks/project_scaling.py [--n 198715] [--iterations 20]
"""
import argparse
import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# ---- assumptions (the A100 rows; the H200 rows use measured network rates) -------------
GPU_CLASS = "NVIDIA A100 SXM 40 GB"
GPU_PEAK_TFLOPS = {"float32 (TF32 tensor cores)": 156.0, "mixed bfloat16": 312.0}  # dense, vendor sheet
GPU_EFFICIENCY = (0.10, 0.30)  # fraction of peak reached by YOPO's 3D convolutions: low, high
MULTI_GPU_SCALING = 0.85       # MirroredStrategy, 4 GPUs on one node: 85% of linear
HOST_CORES = 16                # CPU cores of the GPU node that rotate subtomograms
ROTATIONS_PER_CORE_S = 2000.0  # benchmarks/results/augment.md (1,800-2,300 measured here)


def load(name):
    with open(os.path.join(RESULTS, name)) as fh:
        return json.load(fh)


def network_rates():
    rows = load("network_paper.json")["rows"]
    row = next(r for r in rows if r["precision"] == "float32")
    return row["forward_per_s"], row["train_per_s"], row["gflop_forward"], row["load_average"]


# benchmarks/results/stats.md (loaded machine, pessimistic): K = 2..20 selected on 20,000
# and refitted on all 200,000 took 46-97 s; PCA(16) of 20,000 x 1024 took 9.5 s (linear in N)
K_SEARCH_200K_S = 97.4
PCA_20K_S = 9.49


GPU_RATES = os.path.join("gpu", "network_paper_keras_jax.json")


def measured_gpu_rows(n, host, rot):
    """(name, seconds per iteration) from the network rates measured on a GPU (box 24):
    1 GPU as measured, 4 GPUs at MULTI_GPU_SCALING of linear (an assumption); ``host`` and
    ``rot`` are the host-side seconds, as in the A100 rows."""
    if not os.path.isfile(os.path.join(RESULTS, GPU_RATES)):
        return []
    data = load(GPU_RATES)
    rows = []
    for gpus in (1, 4):
        scale = gpus * MULTI_GPU_SCALING if gpus > 1 else 1.0
        for r in (r for r in data["rows"] if r["box"] == 24 and r["precision"] != "float16"):
            net = n / (r["forward_per_s"] * scale) + 2 * n / (r["train_per_s"] * scale)
            how = "measured rates" if gpus == 1 else f"measured rates x {scale:.1f}"
            rows.append((f"{gpus} x {data['device']}, {r['precision']}, {how} (Keras on "
                         f"{data['backend']})", net + rot + host))
    return rows


def host_seconds(n):
    """PCA + K search per iteration at N on one CPU (slowest measured, scaled linearly in N)."""
    return K_SEARCH_200K_S * n / 200000 + PCA_20K_S * n / 20000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=198715)
    p.add_argument("--iterations", type=int, default=20)
    args = p.parse_args()
    n, its = args.n, args.iterations
    fwd, train, gflop, load_avg = network_rates()
    train_gflop = gflop * fwd / train  # measured training/forward cost ratio on this CPU
    host = host_seconds(n)
    rows = []
    cpu_iter = n / fwd + 2 * n / train + host + n / ROTATIONS_PER_CORE_S / 2
    rows.append(("this CPU (2 cores, Zen 4), float32, measured rates", cpu_iter))
    rot = n / (ROTATIONS_PER_CORE_S * HOST_CORES)  # rotations on the GPU node's host cores
    for gpus in (1, 4):
        for precision, peak in GPU_PEAK_TFLOPS.items():
            for eff in GPU_EFFICIENCY:
                rate = peak * eff * 1e3 * (gpus * MULTI_GPU_SCALING if gpus > 1 else 1)  # GFLOP/s
                net = (n * gflop + 2 * n * train_gflop) / rate
                rows.append((f"{gpus} x {GPU_CLASS}, {precision}, {int(100 * eff)}% of peak",
                             net + rot + host))
    rows += measured_gpu_rows(n, host, rot)
    print(f"N = {n:,}, paper preset, up to {its} iterations (1 epoch on 2N per iteration); "
          f"forward {gflop:.2f} GFLOP, training {train_gflop:.1f} GFLOP per subtomogram; "
          f"host PCA + K search {host:.0f} s per iteration")
    print("| hardware | one iteration | 20 iterations |")
    print("|---|---|---|")
    for name, sec in rows:
        print(f"| {name} | {fmt(sec)} | {fmt(its * sec)} |")
    print(f"\n(CPU rates measured at load average {load_avg:.1f}; see benchmarks/results/network.md)")


def fmt(seconds):
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


if __name__ == "__main__":
    main()
