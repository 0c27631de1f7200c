"""The DISCA iteration loop (method sections 4-5): one run, restarts, checkpoints, resume.

Per iteration (0-based ``it``; printed 1-based):
 1. features of all N subtomograms, inference mode, streamed in batches;
 2. PCA fitted on them (saved per iteration);
 3. mixtures: every candidate K fitted de novo, lowest BIC wins (``stats.select_k``); when
    the winner has the previous iteration's K, that K is fitted again initialised from the
    previous solution and de novo, keeping the better likelihood (``stats.refine_mixture``).
    The previous solution is re-expressed in the current feature space (weights, means and
    covariances of the previous clusters measured on the current PCA features): the PCA
    basis is refitted every iteration, so the previous parameters themselves live in
    another coordinate system;
 4. hard labels by maximum posterior, empty clusters dropped (``stats.assign``), labels
    matched to the previous ones (Hungarian, ``labels.match_labels``), mixture reordered;
 5. DDBI on the PCA features; the lowest-DDBI iteration is remembered with the network
    weights that produced its features, its PCA and its mixture;
 6. if K changed (or on the first iteration) a new head Dense(K) is trained alone on the
    fixed features; then the whole network trains on the subtomograms plus one randomly
    rotated copy each (N(0,1) corner fill), shuffled, targets smoothed by a = 0.2 x 0.9^it;
 7. one progress line, the iteration's small files, an atomic checkpoint, the stop rule.

The default preset (``auto``) replaces steps 3-4 of the first iteration by seed clusters of
rotation-invariant descriptors (``seeding.py``) refined by alignment classification
(``alignment.py``), and keeps those labels in the later iterations (``mixture: kept``): the
network learns them, and the most trained network is saved.

All randomness of an iteration comes from generators seeded by (seed, iteration, purpose),
and the network's own random state (dropout) is part of the checkpoint, so a resumed run
repeats an uninterrupted one exactly.
"""
import json
import os
import shutil
import time

import numpy as np

from .. import contract
from ..errors import EngineError
from ..io.atomic import atomic_path
from . import presets, rundir, validate

CHECKPOINT = contract.CHECKPOINT_DIR
REPORT = contract.REPORT_JSON


def log(message):
    print(message, flush=True)


def _rng(seed, iteration, purpose):
    return np.random.default_rng([int(seed), int(iteration), int(purpose)])


# ---------------------------------------------------------------------------- features
def compute_features(net, particles, batch_size):
    out = np.empty((particles.n, net.cfg["feature_dim"]), np.float32)
    a = 0
    for batch in particles.iter_batches(None, batch_size):
        out[a:a + len(batch)] = net.features(batch)
        a += len(batch)
    return out


# ---------------------------------------------------------------------------- mixtures
def mixture_from_labels(X, labels, k, reg_covar):
    """The previous clustering as a mixture in the current feature space."""
    from .stats import Mixture
    X = np.asarray(X, np.float64)
    d = X.shape[1]
    weights, means, covs = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
    global_cov = np.atleast_2d(np.cov(X, rowvar=False))
    for j in range(k):
        members = X[labels == j]
        weights[j] = max(len(members), 1) / len(X)
        means[j] = members.mean(axis=0) if len(members) else X.mean(axis=0)
        cov = np.atleast_2d(np.cov(members, rowvar=False)) if len(members) > d else global_cov
        covs[j] = cov + reg_covar * np.eye(d)
    return Mixture(weights / weights.sum(), means, covs)


def fit_mixture(Z, cfg, seed, it, prev_labels, prev_k):
    """Steps 3-4 of the module docstring. Returns labels, posteriors, mixture, bics, how."""
    from .labels import match_labels
    from .stats import assign, refine_mixture, select_k
    mix_seed = int(_rng(seed, it, 3).integers(2 ** 31))
    candidates = cfg["k_range"]
    if cfg.get("k_by_merging") and prev_k:  # K comes from the seeding and the merge test
        candidates = [prev_k]
    mixture, bics = select_k(Z, candidates, seed=mix_seed, n_init=cfg["gmm_n_init"],
                             reg_covar=cfg["reg_covar"], max_fit_samples=cfg["max_fit_samples"] or 0,
                             progress=False)
    how = "de_novo"
    if prev_labels is not None and mixture.k == prev_k:
        previous = mixture_from_labels(Z, prev_labels, prev_k, cfg["reg_covar"])
        mixture, how = refine_mixture(Z, previous, seed=mix_seed, reg_covar=cfg["reg_covar"])
    labels, posterior, mixture = assign(Z, mixture)
    if prev_labels is not None:
        labels, perm = match_labels(labels, prev_labels, return_permutation=True)
        mixture = mixture.reorder(perm)
    return labels, posterior, mixture, {str(k): float(v) for k, v in bics.items()}, how


# ---------------------------------------------------------------------------- seeding
def _invariant_space(particles, cfg, seed):
    """Rotation-invariant descriptors (seeding.py) when the preset uses them, else None."""
    if not (cfg.get("seed_labels") or cfg.get("invariant_weight")):
        return None
    from .seeding import invariant_space
    t0 = time.time()
    z = invariant_space(particles, cfg, seed)
    log(f"rotation-invariant descriptors of {particles.n} subtomograms: {z.shape[1]} components "
        f"({time.time() - t0:.1f}s)")
    return z


def _seed_k_of(cfg, it, n):
    """The seed K at the seeded first iteration (sizes its PCA like a later iteration's)."""
    if it != 0 or not cfg.get("seed_labels"):
        return None
    from .seeding import seed_k
    return seed_k(cfg, n)


def _seeded_mixture(Z, z_inv, cfg, seed, particles):
    """Iteration 1 of the default method: over-split k-means of the invariant descriptors,
    refined by alignment classification when the preset asks (alignment.py), expressed as
    a mixture in the network's feature space (so a model saved from this iteration
    classifies new data consistently)."""
    from .seeding import seed_k, seed_labels
    k = seed_k(cfg, len(Z))
    labels = seed_labels(z_inv, k, seed, min_size=int(cfg["min_subtomograms_per_cluster"]))
    how, history = "seeded", None
    if cfg.get("align_classes"):
        from .alignment import classify
        log(f"seed clusters: K={int(labels.max()) + 1}; alignment classification")
        labels, history = classify(particles, labels, z_inv, cfg, log=log)
        how = "aligned"
    k = int(labels.max()) + 1
    mixture = mixture_from_labels(Z, labels, k, cfg["reg_covar"])
    proba = mixture.predict_proba(Z)
    return labels, proba[np.arange(len(labels)), labels], mixture, {}, how, history


def _kept_mixture(Z, labels, k, cfg):
    """Warm-up iterations keep the seeded (or merged) labels: the network first learns
    to tell the seed clusters apart before its features are clustered again."""
    mixture = mixture_from_labels(Z, labels, k, cfg["reg_covar"])
    proba = mixture.predict_proba(Z)
    return labels, proba[np.arange(len(labels)), labels], mixture, {}, "kept"


def _clustering_space(Z, z_inv, cfg):
    """Network features, plus the invariant descriptors when the preset weights them in:
    the descriptors do not collapse onto the labels as trained features do, so a later
    mixture can still split what an earlier one merged."""
    w = float(cfg.get("invariant_weight") or 0)
    if z_inv is None or w <= 0:
        return Z
    # same dimension budget as the network part alone (pca_components_for), shared
    d = max(2, Z.shape[1] // 2)
    zs = Z[:, :d] / (Z[:, :d].std() + 1e-9)
    zi = z_inv[:, :max(2, Z.shape[1] - d)]
    return np.concatenate([zs, w * zi / (zi.std() + 1e-9)], axis=1).astype(np.float32)


def _merge_test(net, particles, labels, k, cfg, seed, it):
    """(merged labels, merges) after this iteration's training, or None (merging.py)."""
    threshold = cfg.get("merge_threshold")
    if not threshold or it + 1 < int(cfg.get("merge_after", 1)) or k < 2:
        return None
    from .merging import confident, merge_groups, rotated_probabilities, soft_confusion
    proba = rotated_probabilities(net, particles, k, _rng(seed, it, 7), cfg["batch_size"])
    own = np.diag(soft_confusion(labels, proba)[0])
    if not confident(labels, proba):
        log(f"  merge test skipped: rotated copies recognise their own cluster with mean p "
            f"{own.mean():.2f} (chance {1 / k:.2f}); the network needs more training")
        return None
    new, _, merges = merge_groups(labels, proba, float(threshold))
    return (new, merges) if merges else None


# ---------------------------------------------------------------------------- training
def train_head(net, features, labels, k, alpha, cfg, seed, it):
    """New Dense(K) head fitted alone on the fixed features (they do not change here)."""
    from .labels import smooth_targets
    net.replace_head(k, int(_rng(seed, it, 4).integers(2 ** 31)))
    targets = smooth_targets(labels, k, alpha)
    rng = _rng(seed, it, 5)
    bs = cfg["batch_size"]
    for _ in range(int(cfg["head_epochs"])):
        order = rng.permutation(len(labels))
        for a in range(0, len(order), bs):
            idx = order[a:a + bs]
            net.train_head_batch(features[idx], targets[idx])
    agree = float(np.mean(np.argmax(net.predict_head(features)[:, :k], axis=1) == labels))
    return agree


def train_network(net, particles, labels, k, alpha, cfg, seed, it):
    """Epochs over the subtomograms + one fresh random rotation of each, shuffled."""
    from .augment import random_rotation_matrices, rotate_volumes
    from .labels import smooth_targets
    n, bs = particles.n, cfg["batch_size"]
    targets = smooth_targets(labels, k, alpha)
    losses = []
    for epoch in range(int(cfg["epochs_per_iteration"])):
        rng = _rng(seed, it, 100 + epoch)
        matrices = random_rotation_matrices(n, rng)
        order = rng.permutation(2 * n)               # >= n: the rotated copy of (i - n)
        for a in range(0, 2 * n, bs):
            ids = order[a:a + bs]
            src = ids % n
            batch = next(particles.iter_batches(src, len(src)))
            rotated = ids >= n
            if rotated.any():
                batch[rotated] = rotate_volumes(batch[rotated], matrices[src[rotated]], rng)
            losses.append(net.train_batch(batch, targets[src]))
    return float(np.mean(losses)) if losses else float("nan")


# ---------------------------------------------------------------------------- checkpoints
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
    from .stats import Mixture, PCAModel
    with open(os.path.join(folder, "best.json")) as fh:
        best = json.load(fh)
    best["weights"] = _load_state_npz(os.path.join(folder, "weights.npz"))["model"]
    best["pca"] = PCAModel.load(os.path.join(folder, "pca.npz"))
    best["mixture"] = Mixture.load(os.path.join(folder, "gmm.npz"))
    for key in ("labels", "posterior", "features", "features_pca"):
        best[key] = np.load(os.path.join(folder, key + ".npy"))
    return best


# ---------------------------------------------------------------------------- one run
def run_once(net, particles, cfg, seed, restart, outdir, iter_dir, truth=None, resume=False):
    """One DISCA run (all iterations) with seed ``seed``; returns (records, best)."""
    from .ddbi import ddbi
    from .labels import StopRule, fraction_changed, label_smoothing
    from .stats import fit_pca
    ckpt = Checkpoint(outdir, restart)
    n = particles.n
    if resume and ckpt.exists():
        state, best = ckpt.load(net)
        records, start = state["records"], state["iteration"] + 1
        prev_labels = state["prev_labels"] if state["prev_k"] else None
        prev_k, stop = state["prev_k"], StopRule.from_state(_stop_from_json(state["stop_rule"]))
        log(f"resuming restart {restart} after iteration {start}/{cfg['max_iterations']} from {ckpt.path}")
        if state.get("finished"):
            return records, best
    else:
        if resume and ckpt.interrupted_write():
            log(f"restart {restart}: its only checkpoint was being written when the run was killed "
                f"and cannot be used: restarting it from iteration 1")
        net.reinitialise(seed)
        if cfg.get("_init_weights") is not None:
            net.load_feature_weights(cfg["_init_weights"])
        records, best, start, prev_labels, prev_k = [], None, 0, None, None
        stop = StopRule(cfg["patience"], cfg["min_stable"])
    total = int(cfg["max_iterations"])
    z_inv = _invariant_space(particles, cfg, seed)
    for it in range(start, total):
        seconds, t0 = {}, time.time()
        features = compute_features(net, particles, cfg["batch_size"])
        seconds["features"], t0 = time.time() - t0, time.time()
        d = presets.pca_components_for(cfg, n, prev_k or _seed_k_of(cfg, it, n))
        pca = fit_pca(features, d, seed=int(_rng(seed, it, 2).integers(2 ** 31)))
        Z = pca.transform(features).astype(np.float32)
        seconds["pca"], t0 = time.time() - t0, time.time()
        space = _clustering_space(Z, z_inv, cfg)  # where labels are made and DDBI measured
        aligned = None
        if it == 0 and cfg.get("seed_labels"):
            labels, posterior, mixture, bics, how, aligned = _seeded_mixture(
                Z, z_inv, cfg, seed, particles)
        elif it < int(cfg.get("seed_warmup") or 0):
            labels, posterior, mixture, bics, how = _kept_mixture(Z, prev_labels, prev_k, cfg)
        else:
            labels, posterior, mixture, bics, how = fit_mixture(
                space, cfg, seed, it, prev_labels, prev_k)
            if mixture.dim != Z.shape[1]:  # keep the saved model in the network's space
                mixture = mixture_from_labels(Z, labels, mixture.k, cfg["reg_covar"])
        k = mixture.k
        changed = fraction_changed(labels, prev_labels)
        seconds["mixture"], t0 = time.time() - t0, time.time()
        # DDBI where the labels were made (with the descriptors when they take part), so
        # that iterations are compared in comparable spaces
        score = ddbi(space, labels)
        seconds["ddbi"], t0 = time.time() - t0, time.time()
        alpha = label_smoothing(it, cfg["label_smoothing"], cfg["smoothing_decay"])
        head_agreement = None
        if k != prev_k:
            head_agreement = train_head(net, features, labels, k, alpha, cfg, seed, it)
        seconds["head"], t0 = time.time() - t0, time.time()
        # kept labels are the best's labels: only the network differs, and the more
        # trained one classifies new data better
        if best is None or score < best["ddbi"] or how == "kept":
            best = {"iteration": it + 1, "ddbi": float(score), "k": int(k), "labels": labels,
                    "posterior": posterior.astype(np.float32), "pca": pca, "mixture": mixture,
                    "features": features, "features_pca": Z,
                    "weights": [np.array(w) for w in net.model.get_weights()]}
        lr = presets.learning_rate(cfg, it)
        net.set_learning_rate(lr)
        loss = train_network(net, particles, labels, k, alpha, cfg, seed, it)
        seconds["train"], t0 = time.time() - t0, time.time()
        merged = _merge_test(net, particles, labels, k, cfg, seed, it)
        seconds["merge"] = time.time() - t0
        sizes = np.bincount(labels, minlength=k).tolist()
        rec = {"iteration": it + 1, "k": int(k), "bic": bics, "mixture": how, "ddbi": float(score),
               "labels_changed": float(changed), "cluster_sizes": sizes, "learning_rate": lr,
               "label_smoothing": alpha, "pca_components": int(Z.shape[1]), "train_loss": loss,
               "head_agreement": head_agreement,
               "merges": None if merged is None else merged[1],
               "alignment": aligned,
               "seconds": {key: round(v, 3) for key, v in seconds.items()}}
        if truth is not None:
            from .metrics import ground_truth_block
            rec["ground_truth"] = ground_truth_block(truth, labels)
        records.append(rec)
        log(_progress_line(rec, total, restart if cfg["restarts"] > 1 else None))
        _save_iteration(iter_dir, it + 1, Z, labels)
        if merged is not None:  # the next iteration starts from the merged clusters
            labels, k = merged[0], int(merged[0].max()) + 1
            log(f"  merge test: {len(merged[1])} merge(s) -> K={k}: " + "; ".join(
                f"{'+'.join(str(g + 1) for g in grp)} (confusion {c:.2f})" for grp, c in merged[1]))
        stopped = stop.update(k, labels)
        prev_labels, prev_k = labels, int(k)
        ckpt.save(net, {"iteration": it, "prev_k": prev_k, "prev_labels": prev_labels,
                        "records": records, "stop_rule": _stop_to_json(stop.state()),
                        "finished": bool(stopped or it + 1 == total), "seed": seed}, best)
        if stopped:
            log(f"stopping after iteration {it + 1}: K and >= {100 * cfg['min_stable']:.0f}% of the "
                f"labels unchanged for {cfg['patience']} iterations")
            break
    return records, best


def _k_search_text(cfg, n):
    if cfg.get("seed_labels") and cfg.get("align_classes"):
        limit = int(cfg.get("align_max_n") or 0)
        where = f"a random subsample of {limit}" if 0 < limit < n else f"all {n}"
        return (f" (K: at most {max(cfg['k_range'])} seed clusters, merged by the alignment "
                f"merge test on {where})")
    limit = int(cfg["max_fit_samples"] or 0)
    if 0 < limit < n:
        return f" (K selected on a subsample of {limit}, the winner refitted on all {n})"
    return f" (K selected on all {n})"


def _progress_line(rec, total, restart):
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
            f"train {s['train']:.1f}s" + (f" merge test {s['merge']:.1f}s" if s.get('merge', 0) > 0.05 else ""))


def _stop_to_json(state):
    out = dict(state)
    out["prev_labels"] = None if state["prev_labels"] is None else np.asarray(state["prev_labels"]).tolist()
    return out


def _stop_from_json(state):
    out = dict(state)
    out["prev_labels"] = None if state["prev_labels"] is None else np.asarray(state["prev_labels"], np.int64)
    return out


def _save_iteration(iter_dir, iteration, Z, labels):
    folder = os.path.join(iter_dir, f"iter_{iteration:03d}")
    os.makedirs(folder, exist_ok=True)
    for name, arr in (("features_pca.npy", Z), ("labels.npy", labels.astype(np.int32))):
        with atomic_path(os.path.join(folder, name)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)


# ---------------------------------------------------------------------------- the command
def read_init_model(folder):
    """(config, keras model) of a finished run used to initialise the network."""
    report = os.path.join(folder or "", REPORT)
    model_path = os.path.join(folder or "", "model", "model.keras")
    if not (os.path.isfile(report) and os.path.isfile(model_path) and contract.is_finished_run(folder or "")):
        raise EngineError(f"--init-model {folder}: not the output folder of a finished 'cluster' run "
                          "(needs clusters.star, report.json and model/model.keras)")
    try:
        with open(report) as fh:
            config = json.load(fh)["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise EngineError(f"--init-model {folder}: cannot read its report.json ({exc})")
    from .training import load_model
    return config, load_model(model_path)


def check_before_loading(input_star, outdir, cfg):
    """Every check that needs no voxels, before anything is read or written: settings,
    output folder, K range for N, box for the network, and on --resume the fingerprint."""
    from ..io.outdir import check_output_folder
    from .dataset import peek_particles
    validate.check_settings(cfg)
    check_output_folder(outdir)
    folder = rundir.RunFolder(outdir, cfg)
    table, paths, box = peek_particles(input_star)
    presets.check_k_range(cfg, len(paths))
    presets.check_box(cfg, box)
    fp = rundir.fingerprint(input_star, table, paths, cfg)
    if folder.resume:
        rundir.check_fingerprint(outdir, fp)
    return folder, fp


def run_cluster(input_star, output_dir, preset="auto", **settings):
    """Run DISCA on a particles STAR file; write the output folder; return the report."""
    t_start = time.time()
    cfg = presets.resolve(preset, **settings)
    outdir = os.path.abspath(output_dir)
    init_model = None
    if cfg["init_model"]:
        init_cfg, init_model = read_init_model(cfg["init_model"])
        cfg["widths"], cfg["feature_dim"] = list(init_cfg["widths"]), int(init_cfg["feature_dim"])
    folder, fp = check_before_loading(input_star, outdir, cfg)
    from . import training
    training.configure_runtime(cfg["threads"], cfg["gpus"], cfg["seed"])  # bad --gpus: before any output
    if folder.finished and folder.resume:
        log(f"{outdir} already holds this finished run (same input and settings); nothing to resume")
        with open(os.path.join(outdir, REPORT)) as fh:
            return json.load(fh)
    if init_model is not None:
        log(f"initialising the network from {cfg['init_model']} (its architecture is used)")
    if not folder.resume:
        folder.start()
        rundir.save_fingerprint(folder.workdir, fp)
    cache = cfg["cache_dir"] or os.path.join(folder.workdir, "cache")
    try:
        report = _run(input_star, folder.workdir, cfg, init_model, cache, t_start)
    except BaseException:
        if not cfg["cache_dir"]:
            shutil.rmtree(cache, ignore_errors=True)
        if not folder.resume and not Checkpoint(folder.workdir, 0).exists():
            folder.abandon()  # nothing computed yet: leave the folder as it was
        raise
    if not cfg["cache_dir"]:
        shutil.rmtree(cache, ignore_errors=True)
    folder.commit()
    return report


def _run(input_star, workdir, cfg, init_model, cache, t_start):
    from . import outputs, training
    from .dataset import load_particles
    particles = load_particles(input_star, cache_dir=cache, min_box=2 * len(cfg["widths"]) + 1,
                               min_particles=2)
    truth = None
    if contract.TRUE_CLASS in particles.table:
        truth = particles.table.column(contract.TRUE_CLASS, int, input_star)
    from .yopo import forward_gflop
    precision, why = training.choose_precision(
        cfg["precision"], forward_gflop(particles.box, cfg["widths"], cfg["feature_dim"]))
    training.set_precision(precision)
    strategy, where = training.make_strategy()
    cfg["precision_used"] = precision
    log(f"DISCA ({cfg['preset']} preset): {particles.n} subtomograms of {particles.box}^3, "
        f"K candidates {contract.format_k_range(cfg['k_range'])}{_k_search_text(cfg, particles.n)}, "
        f"{precision} ({why}), {where}")
    net = training.Network(cfg, particles.box, precision, strategy)
    if init_model is not None:
        cfg["_init_weights"] = net.feature_weights_from(init_model)
    runs = []
    for r in range(int(cfg["restarts"])):
        seed = int(cfg["seed"]) + r
        iter_dir = (os.path.join(workdir, "iterations") if cfg["restarts"] == 1
                    else os.path.join(workdir, "restarts", f"restart_{r:02d}", "iterations"))
        records, best = run_once(net, particles, cfg, seed, r, workdir, iter_dir, truth, cfg["resume"])
        runs.append({"restart": r, "seed": seed, "records": records, "best": best, "iter_dir": iter_dir})
        log(f"restart {r} (seed {seed}): lowest DDBI {best['ddbi']:.4f} at iteration "
            f"{best['iteration']} with K={best['k']}")
    chosen = min(runs, key=lambda run: run["best"]["ddbi"])
    return outputs.write_all(workdir, particles, cfg, net, runs, chosen, truth, t_start)
