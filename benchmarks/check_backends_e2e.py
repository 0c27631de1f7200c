"""The regression golden's `auto` run (tests/engine/test_regression.py: same simulation,
seed, one thread, float32) under each backend pair (KERAS_BACKEND x DISCA_ALIGN_BACKEND),
compared with the stored labels, K and feature hash, with the wall time of each run.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/check_backends_e2e.py WORKDIR

The first pair (tensorflow, numpy) is what the golden recorded: its time is the baseline.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests", "engine"), os.path.join(HERE, "..")]
import test_regression as T  # noqa: E402

PAIRS = (("tensorflow", "numpy"), ("tensorflow", "jax"), ("jax", "jax"))


def main(work):
    import json
    from sklearn.metrics import adjusted_rand_score
    with open(T.GOLDEN) as fh:
        golden = json.load(fh)["auto"]
    subprocess.run([sys.executable, "-m", "disca_engine", "simulate", "subtomos", work + "/sim",
                    *T.SIMULATION], check=True, capture_output=True)
    for keras_b, align_b in PAIRS:
        env = dict(os.environ, KERAS_BACKEND=keras_b, DISCA_ALIGN_BACKEND=align_b,
                   TF_CPP_MIN_LOG_LEVEL="3")
        out = f"{work}/auto_{keras_b}_{align_b}"
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "disca_engine", "cluster", "--input",
                            work + "/sim/particles.star", "--output", out, *T.RUNS["auto"],
                            *T.COMMON], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr[-2000:]
        r = T.capture_cluster(out)
        print(f"KERAS_BACKEND={keras_b} DISCA_ALIGN_BACKEND={align_b}: {time.time() - t0:.0f} s, "
              f"K {r['k']} (golden {golden['k']}), labels equal {r['labels'] == golden['labels']}, "
              f"ARI {adjusted_rand_score(golden['labels'], r['labels']):.3f}, "
              f"feature hash equal {r['features_sha256'] == golden['features_sha256']}")
        for line in p.stdout.splitlines():
            if "scans on" in line:
                print("   ", line)


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]))
