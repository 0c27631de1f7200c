"""Counts the XLA compilations of the alignment stage (with its merge test) on jax: 40
simulated subtomograms, the auto method with 300 rotations, as test_align_backend.py runs it.

    OMP_NUM_THREADS=1 PYTHONPATH=.:PATH_TO_PYTEST nice -n 19 python benchmarks/count_jax_compiles.py
"""
import logging, os, sys, time
os.environ["DISCA_ALIGN_BACKEND"] = "jax"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "engine"))
import jax
jax.config.update("jax_log_compiles", True)
count = {"n": 0, "names": {}}
class H(logging.Handler):
    def emit(self, rec):
        msg = rec.getMessage()
        if "Compiling" in msg or "Finished XLA compilation" in msg:
            if "Finished XLA compilation" in msg:
                count["n"] += 1
                name = msg.split("of ")[1].split(" ")[0] if "of " in msg else "?"
                count["names"][name] = count["names"].get(name, 0) + 1
logging.getLogger("jax").addHandler(H()); logging.getLogger("jax").setLevel(logging.DEBUG)
import numpy as np
from test_align_backend import _simulated
from disca_engine import settings as S
from disca_engine.clustering.dataset import ParticleSet
from disca_engine.clustering.pipeline import classes_from_seeds
vols, truth = _simulated(["ribosome", "rod"], 20, 1.0, 60)
seeds = truth * 2 + np.arange(len(vols)) % 2
method = S.resolve("auto", alignment={"rotations": 300}).method
t0 = time.time()
classes_from_seeds(ParticleSet(None, None, vols), seeds, np.zeros((40, 2), np.float32), method, 0, 1, log=lambda m: None)
print("seconds %.1f compilations %d" % (time.time() - t0, count["n"]))
print(sorted(count["names"].items(), key=lambda kv: -kv[1])[:10])
