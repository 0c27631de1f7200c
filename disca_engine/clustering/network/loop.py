"""The DISCA iteration loop (method sections 4-5) of one restart, with checkpoints and resume.

Per iteration (0-based ``it``; printed 1-based):
 1. features of all N subtomograms, inference mode, streamed in batches;
 2. PCA fitted on them (saved per iteration);
 3. labels from the labelling (``labelling.py``: mixtures with K by BIC, or fixed labels);
 4. DDBI where the labels are compared across iterations; the lowest-DDBI iteration is
    remembered with the network weights that produced its features, its PCA and its mixture
    (with fixed labels the latest, most trained network is kept);
 5. if K changed (or on the first iteration) a new head Dense(K) is trained alone on the
    fixed features; then the whole network trains on the subtomograms plus one randomly
    rotated copy each (N(0,1) corner fill), shuffled, targets smoothed by a = 0.2 x 0.9^it;
 6. one progress line, the iteration's small files, an atomic checkpoint, the stop rule.

All randomness of an iteration comes from generators seeded by (seed, iteration, purpose),
and the network's own random state (dropout) is part of the checkpoint, so a resumed run
repeats an uninterrupted one exactly.
"""
import os
import time
from dataclasses import dataclass

import numpy as np

from ... import settings as S
from ...io.atomic import atomic_path
from .checkpoint import Checkpoint
from ..pca import fit_pca
from .training import compute_features, rng, train_head, train_network


def log(message):
    print(message, flush=True)


@dataclass
class Restart:
    """One restart of a run: where it writes, its seed, and what it starts from."""
    outdir: str
    iter_dir: str
    restart: int
    restarts: int
    seed: int
    resume: bool = False
    truth: np.ndarray = None
    init_weights: dict = None


@dataclass
class LoopState:
    records: list
    best: dict
    start: int
    prev_labels: np.ndarray
    prev_k: int
    stop: object
    finished: bool = False


def start(net, method, run):
    """The loop's state: from the restart's checkpoint on --resume, else fresh (and the
    network re-initialised with the restart's seed)."""
    from ..labels import StopRule
    ckpt = Checkpoint(run.outdir, run.restart)
    if run.resume and ckpt.exists():
        state, best = ckpt.load(net)
        log(f"resuming restart {run.restart} after iteration {state['iteration'] + 1}/"
            f"{method.loop.max_iterations} from {ckpt.path}")
        return LoopState(state["records"], best, state["iteration"] + 1,
                         state["prev_labels"] if state["prev_k"] else None, state["prev_k"],
                         StopRule.from_state(_stop_from_json(state["stop_rule"])),
                         bool(state.get("finished")))
    if run.resume and ckpt.interrupted_write():
        log(f"restart {run.restart}: its only checkpoint was being written when the run was "
            "killed and cannot be used: restarting it from iteration 1")
    net.reinitialise(run.seed)
    if run.init_weights is not None:
        net.load_feature_weights(run.init_weights)
    return LoopState([], None, 0, None, None, StopRule(method.loop.patience, method.loop.min_stable))


def iterate(net, particles, method, labelling, space, run, state):
    """Iterations from ``state.start`` on; ``space(Z)`` is where DDBI compares the labels
    (the features, or the features beside the descriptors). Returns (records, best)."""
    ckpt = Checkpoint(run.outdir, run.restart)
    total = method.loop.max_iterations
    for it in range(state.start, total):
        rec, Z, labels, k = _iteration(net, particles, method, labelling, space, run, state, it)
        state.records.append(rec)
        log(progress_line(rec, total, run.restart if run.restarts > 1 else None))
        save_iteration(run.iter_dir, it + 1, Z, labels)
        stopped = state.stop.update(k, labels)
        state.prev_labels, state.prev_k = labels, int(k)
        ckpt.save(net, {"iteration": it, "prev_k": state.prev_k, "prev_labels": labels,
                        "records": state.records, "stop_rule": _stop_to_json(state.stop.state()),
                        "finished": bool(stopped or it + 1 == total), "seed": run.seed},
                  state.best)
        if stopped:
            log(f"stopping after iteration {it + 1}: K and >= {100 * method.loop.min_stable:.0f}% "
                f"of the labels unchanged for {method.loop.patience} iterations")
            break
    return state.records, state.best


def _iteration(net, particles, method, labelling, space, run, state, it):
    """Steps 1-5 of the module docstring; returns (record, Z, labels, K)."""
    from ..ddbi import ddbi
    from ..labels import fraction_changed, label_smoothing
    seconds, t0 = {}, time.time()
    features = compute_features(net, particles, method.network.batch_size)
    seconds["features"], t0 = time.time() - t0, time.time()
    d = S.pca_components_for(method, particles.n, labelling.pca_k(it, state.prev_k))
    pca = fit_pca(features, d, seed=int(rng(run.seed, it, 2).integers(2 ** 31)))
    Z = pca.transform(features).astype(np.float32)
    seconds["pca"], t0 = time.time() - t0, time.time()
    step = labelling.label(Z, it, run.seed, state.prev_labels, state.prev_k)
    k = step.mixture.k
    changed = fraction_changed(step.labels, state.prev_labels)
    seconds["mixture"], t0 = time.time() - t0, time.time()
    score = ddbi(space(Z), step.labels)
    seconds["ddbi"], t0 = time.time() - t0, time.time()
    alpha = label_smoothing(it, method.loop.label_smoothing, method.loop.smoothing_decay)
    head_agreement = None
    if k != state.prev_k:
        head_agreement = train_head(net, features, step.labels, k, alpha, method.network,
                                    run.seed, it)
    seconds["head"], t0 = time.time() - t0, time.time()
    if state.best is None or score < state.best["ddbi"] or labelling.keeps_labels:
        state.best = {"iteration": it + 1, "ddbi": float(score), "k": int(k),
                      "labels": step.labels, "posterior": step.posterior.astype(np.float32),
                      "pca": pca, "mixture": step.mixture, "features": features,
                      "features_pca": Z, "weights": [np.array(w) for w in net.model.get_weights()]}
    lr = S.learning_rate(method, it)
    net.set_learning_rate(lr)
    loss = train_network(net, particles, step.labels, k, alpha, method.network, run.seed, it)
    seconds["train"] = time.time() - t0
    rec = {"iteration": it + 1, "k": int(k), "bic": step.bics, "mixture": step.how,
           "ddbi": float(score), "labels_changed": float(changed),
           "cluster_sizes": np.bincount(step.labels, minlength=k).tolist(), "learning_rate": lr,
           "label_smoothing": alpha, "pca_components": int(Z.shape[1]), "train_loss": loss,
           "head_agreement": head_agreement,
           "classification": labelling.history if step.how == "aligned" else None,
           "seconds": {key: round(v, 3) for key, v in seconds.items()}}
    if run.truth is not None:
        from ..metrics import ground_truth_block
        rec["ground_truth"] = ground_truth_block(run.truth, step.labels)
    return rec, Z, step.labels, k


def progress_line(rec, total, restart):
    s = rec["seconds"]
    bic = rec["bic"].get(str(rec["k"]))
    sizes = ",".join(map(str, rec["cluster_sizes"]))
    gt = rec.get("ground_truth")
    truth = f" homogeneity={gt['homogeneity']:.3f} accuracy={100 * gt['accuracy']:.1f}%" if gt else ""
    head = f"restart {restart} " if restart is not None else ""
    return (f"{head}iteration {rec['iteration']}/{total}: K={rec['k']} "
            f"BIC={'%.1f' % bic if bic is not None else '-'} ({rec['mixture']}) DDBI={rec['ddbi']:.3f} "
            f"changed={100 * rec['labels_changed']:.1f}% sizes=[{sizes}] lr={rec['learning_rate']:.3g} "
            f"alpha={rec['label_smoothing']:.3f}{truth} time features {s['features']:.1f}s "
            f"pca {s['pca']:.1f}s mixture {s['mixture']:.1f}s head {s['head']:.1f}s "
            f"train {s['train']:.1f}s")


def _stop_to_json(state):
    out = dict(state)
    out["prev_labels"] = None if state["prev_labels"] is None else np.asarray(state["prev_labels"]).tolist()
    return out


def _stop_from_json(state):
    out = dict(state)
    out["prev_labels"] = None if state["prev_labels"] is None else np.asarray(state["prev_labels"], np.int64)
    return out


def save_iteration(iter_dir, iteration, Z, labels):
    folder = os.path.join(iter_dir, f"iter_{iteration:03d}")
    os.makedirs(folder, exist_ok=True)
    for name, arr in (("features_pca.npy", Z), ("labels.npy", labels.astype(np.int32))):
        with atomic_path(os.path.join(folder, name)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
