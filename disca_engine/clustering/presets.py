"""Settings presets of the DISCA loop: ``paper`` (as published) and ``fast`` (CPU, small N).

A preset fills every setting the user did not give explicitly. ``paper`` follows the method
file exactly (YOPO, PCA 16, K 2..20, Nadam 1e-5 x0.95 per iteration, one epoch per iteration,
batch 64, head 10 epochs at 1e-4, 20 iterations). ``fast`` keeps the structure of the method
(valid convolutions, max-pooling taps, concat -> BN -> Dense, BIC-selected full-covariance
mixtures, matched labels, smoothing, rotation copies, lowest-DDBI result) but uses a small
network and a schedule that gives the features enough gradient steps and the mixtures few
enough parameters to leave K = 2 at N = 200 (method section 10; see docs/clustering.md).
"""
from .. import contract
from ..errors import EngineError

# the method's own rules, shared by both presets (method sections 4-5)
METHOD_RULES = {
    "max_iterations": 20,
    "label_smoothing": 0.2,
    "smoothing_decay": 0.9,
    "patience": 3,
    "min_stable": 0.99,
    "reg_covar": 1e-5,
    "gmm_n_init": 1,
}

PRESETS = {
    "paper": {
        "widths": [64 + 16 * i for i in range(10)],
        "feature_dim": 1024,
        "dropout": 0.5,
        "k_range": list(range(2, 21)),
        "pca_components": 16,
        "pca_per_subtomograms": None,       # fixed 16 components
        "learning_rate": 1e-5,
        "lr_decay": 0.95,
        "epochs_per_iteration": 1,
        "batch_size": 64,
        "head_epochs": 10,
        "head_learning_rate": 1e-4,
        **METHOD_RULES,
        # the method's cost rule (section 9): select K on at most 20,000 subtomograms, refit
        # the winner on all (K = 2..20 on all 200,000 took 433 s an iteration, 45-97 s so)
        "max_fit_samples": 20000,
    },
    "fast": {
        "widths": [8, 16, 16, 24, 24, 32],
        "feature_dim": 128,
        "dropout": 0.5,
        # the reference code's default candidate list: starting over-split lets training separate
        # classes that a K = 2/3 start would merge for good at small N (docs/clustering.md)
        "k_range": [5, 10, 20],
        "pca_components": 16,
        "pca_per_subtomograms": 50,         # at most N/50 components (4 at N = 200)
        "learning_rate": 1e-3,
        "lr_decay": 0.95,
        "epochs_per_iteration": 2,
        "batch_size": 32,
        "head_epochs": 30,
        "head_learning_rate": 1e-3,
        **METHOD_RULES,
        "max_fit_samples": 20000,
    },
}

# alignment classification (alignment.py); used by `auto`, off in `paper` and `fast`
ALIGN_SETTINGS = {
    "align_rotations": 1500,
    "align_coarse": 12,
    "align_init_rounds": 2,
    "align_rounds": 12,
    "align_merge": 0.8,
    "align_max_n": 20000,              # larger N: classes found on a subsample of this size
    "align_coarse_shift": 1,           # shift search of the rotation scan, in coarse voxels
    "align_pose_shift": 2,             # the same for the merge test's pose of two averages
    "align_merge_joint": False,        # merge test over the Fourier voxels both averages measured
    "align_merge_min_count": 1.0,      # ... by at least this many members each
    "align_pose_top": 4,               # coarse rotations of two averages scored at full size
    "align_merge_keep_larger": False,  # a merged pair keeps the larger cluster's reference
    "align_split_passes": 0,           # split tests of clusters that may hold two structures
    "align_split_min": 10,             # ... each part at least this many subtomograms
    "align_disattenuate": True,        # scores divided by sqrt(reliability) of each average
    "align_polish": True,              # two-view relabelling at the end (polish.py)
    "align_junk_split": 0.2,           # then junk split off (junk_split.py); 0: off
    "align_junk_spectrum": 0.8,        # ... also groups of other content (null ratio); 0: off
}

# The default method (docs/clustering.md): seed clusters of rotation-invariant descriptors
# (seeding.py) refined and merged by alignment classification (alignment.py); the network
# then learns those labels (kept, not re-clustered: re-clustering briefly trained features
# lost structure in every measured cell) so that the saved model classifies new data.
PRESETS["auto"] = {
    **PRESETS["fast"],
    "k_range": list(range(2, 25)),
    "seed_labels": True,
    "seed_per_cluster": 12,
    "seed_k_min": 6,
    "seed_k_max": 24,
    "seed_pca": 16,
    "invariant_weight": 1.0,
    "invariant_angular": True,         # angular power in the descriptors (tune_seeds.py)
    **ALIGN_SETTINGS,
    "align_classes": True,
    "seed_warmup": 99,                 # every later iteration keeps the aligned labels
    "k_by_merging": False,
    "merge_threshold": None,
    "merge_after": 2,
    "pca_per_cluster": True,
    "pca_components": 16,
    "pca_per_subtomograms": None,
    "epochs_per_iteration": 1,
    "max_iterations": 2,
}
for _name in ("paper", "fast"):
    PRESETS[_name].update(ALIGN_SETTINGS, align_classes=False, seed_labels=False,
                          seed_per_cluster=12, seed_k_min=6, seed_k_max=24, seed_pca=16,
                          invariant_weight=0.0, invariant_angular=True, k_by_merging=False,
                          merge_threshold=None, merge_after=1, seed_warmup=0, pca_per_cluster=False)

# every other setting the loop understands, with its default
GENERAL_DEFAULTS = {
    "seed": 0,
    "restarts": 1,
    "precision": "auto",
    "threads": None,
    "gpus": None,
    "init_model": None,
    "resume": False,
    "overwrite": False,
    "cache_dir": None,
    "min_subtomograms_per_cluster": 5,
}


def parse_k_range(text):
    """The contract's K-range parser (one syntax for engine and plugin)."""
    return contract.parse_k_range(text)


def resolve(preset="auto", **overrides):
    """Preset values, general defaults, then the explicit (non-None) overrides."""
    if preset not in PRESETS:
        raise EngineError(f"unknown preset '{preset}': choose one of {', '.join(PRESETS)}")
    unknown = set(overrides) - set(PRESETS[preset]) - set(GENERAL_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    cfg = {"preset": preset, **PRESETS[preset], **GENERAL_DEFAULTS}
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("pca_components") is not None:
        cfg["pca_per_subtomograms"] = None  # an explicit size is used as given
    if int(cfg["pca_components"]) < 1:
        raise EngineError("--pca-components must be >= 1")
    cfg["k_range"] = parse_k_range(cfg["k_range"])
    cfg["_k_range_given"] = overrides.get("k_range") is not None
    return cfg


def pca_components_for(cfg, n, k=None):
    """PCA size for N subtomograms: the preset's size, capped at N / pca_per_subtomograms;
    with ``pca_per_cluster`` and a known K, capped so that K full-covariance components
    have about twice the d + 1 members each that they need."""
    d = int(cfg["pca_components"])
    if cfg.get("pca_per_subtomograms"):
        d = min(d, max(2, n // int(cfg["pca_per_subtomograms"])))
    if cfg.get("pca_per_cluster") and k:
        d = min(d, max(2, n // (2 * int(k)) - 1))
    return max(1, min(d, n - 1, int(cfg["feature_dim"])))


def check_k_range(cfg, n):
    """The largest candidate K must leave enough subtomograms per cluster."""
    per = int(cfg["min_subtomograms_per_cluster"])
    k_max = max(cfg["k_range"])
    if cfg.get("seed_labels") and not cfg.get("_k_range_given") and n >= 2 * per:
        # the preset's own range is only an upper bound for seeded runs: cap it at what N
        # supports (a range the user gave is checked as given)
        cfg["k_range"] = [k for k in cfg["k_range"] if k * per <= n] or [2]
        return
    if k_max * per > n:
        lo = min(cfg["k_range"])
        fit = max(lo, n // per)
        spec = contract.format_k_range(cfg["k_range"])
        raise EngineError(f"K range {spec} needs at least {k_max * per} subtomograms ({per} per "
                          f"cluster for K={k_max}); you have {n} subtomograms: lower --k-range "
                          f"(e.g. --k-range {lo}:{fit}) or add data")


def learning_rate(cfg, iteration):
    """Learning rate of 0-based ``iteration``: start x decay^iteration."""
    return float(cfg["learning_rate"]) * float(cfg["lr_decay"]) ** int(iteration)


def check_box(cfg, box):
    need = 2 * len(cfg["widths"]) + 1
    if box < need:
        raise EngineError(f"subtomograms are {box}^3 but the {cfg['preset']} network needs boxes of at "
                          f"least {need}^3 ({len(cfg['widths'])} valid 3x3x3 convolutions): "
                          "re-extract with a larger box")
    return need

