"""Checkpoints of the iteration loop (``checkpoint/restart_RR/``): the network's whole state,
the loop's state and the best iteration so far, written to a fresh folder and swapped in by
rename, so that a run killed at any moment resumes from its last complete iteration."""
import json
import os
import shutil

import numpy as np

from ... import contract
from ...errors import naming
from ...io.atomic import atomic_path

CHECKPOINT = contract.CHECKPOINT_DIR


def _save_state_npz(path, state):
    arrays = {}
    for group, values in state.items():
        for i, v in enumerate(values):
            arrays[f"{group}__{i:04d}"] = v
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _load_state_npz(path):
    state = {}
    with np.load(path) as z:
        for key in sorted(z.files):
            group, _ = key.split("__")
            state.setdefault(group, []).append(z[key])
    return state


class Checkpoint:
    """``checkpoint/restart_RR/``: written to a fresh folder, then swapped in by rename."""

    def __init__(self, root, restart):
        self.path = os.path.join(root, CHECKPOINT, f"restart_{restart:02d}")

    def exists(self):
        return os.path.isfile(os.path.join(self._readable(), "loop.json")) if self._readable() else False

    def interrupted_write(self):
        """A checkpoint was being written (``.new``) but none is readable."""
        return os.path.isdir(self.path + ".new") and self._readable() is None

    def _readable(self):
        for p in (self.path, self.path + ".old"):
            if os.path.isfile(os.path.join(p, "loop.json")):
                return p
        return None

    def save(self, net, loop_state, best):
        with naming(self.path + ".new"):  # np.save into an open file names no path
            self._save(net, loop_state, best)

    def _save(self, net, loop_state, best):
        tmp = self.path + ".new"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        _save_state_npz(os.path.join(tmp, "network.npz"), net.get_state())
        np.save(os.path.join(tmp, "prev_labels.npy"), loop_state["prev_labels"])
        if best is not None and not self._reuse_best(tmp, best):
            _save_best(os.path.join(tmp, "best"), best)
        with open(os.path.join(tmp, "loop.json"), "w") as fh:
            json.dump({k: v for k, v in loop_state.items() if k != "prev_labels"}, fh)
        if os.path.isdir(self.path):
            shutil.rmtree(self.path + ".old", ignore_errors=True)
            os.replace(self.path, self.path + ".old")
        os.replace(tmp, self.path)
        shutil.rmtree(self.path + ".old", ignore_errors=True)

    def _reuse_best(self, tmp, best):
        """Hard-link the previous checkpoint's best/ when it is still the best (features of
        large N are hundreds of MB: do not rewrite them every iteration)."""
        old = os.path.join(self.path, "best")
        try:
            with open(os.path.join(old, "best.json")) as fh:
                if json.load(fh)["iteration"] != best["iteration"]:
                    return False
            os.makedirs(os.path.join(tmp, "best"))
            for name in os.listdir(old):
                os.link(os.path.join(old, name), os.path.join(tmp, "best", name))
            return True
        except (OSError, ValueError, KeyError):
            shutil.rmtree(os.path.join(tmp, "best"), ignore_errors=True)
            return False

    def load(self, net):
        path = self._readable()
        with open(os.path.join(path, "loop.json")) as fh:
            loop_state = json.load(fh)
        loop_state["prev_labels"] = np.load(os.path.join(path, "prev_labels.npy"))
        net.set_state(_load_state_npz(os.path.join(path, "network.npz")))
        best_dir = os.path.join(path, "best")
        best = _load_best(best_dir) if os.path.isdir(best_dir) else None
        return loop_state, best


def _save_best(folder, best):
    os.makedirs(folder, exist_ok=True)
    _save_state_npz(os.path.join(folder, "weights.npz"), {"model": best["weights"]})
    best["pca"].save(os.path.join(folder, "pca.npz"))
    best["mixture"].save(os.path.join(folder, "gmm.npz"))
    for key in ("labels", "posterior", "features", "features_pca"):
        np.save(os.path.join(folder, key + ".npy"), best[key])
    with open(os.path.join(folder, "best.json"), "w") as fh:
        json.dump({"iteration": best["iteration"], "ddbi": best["ddbi"], "k": best["k"]}, fh)


def _load_best(folder):
    from ..mixtures import Mixture
    from ..pca import PCAModel
    with open(os.path.join(folder, "best.json")) as fh:
        best = json.load(fh)
    best["weights"] = _load_state_npz(os.path.join(folder, "weights.npz"))["model"]
    best["pca"] = PCAModel.load(os.path.join(folder, "pca.npz"))
    best["mixture"] = Mixture.load(os.path.join(folder, "gmm.npz"))
    for key in ("labels", "posterior", "features", "features_pca"):
        best[key] = np.load(os.path.join(folder, key + ".npy"))
    return best
