"""The vocabulary shared by the engine and the Scipion plugin, defined once.

Pure Python (no numpy at import): the plugin imports it from Scipion's environment.
docs/engine-contract.md describes the same names.
"""

from .errors import EngineError

# ---------------------------------------------------------------- STAR columns (no leading '_')
IMAGE = "rlnImageName"
TOMO_NAME = "rlnTomoName"
COORDS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
SCORE = "rlnAutopickFigureOfMerit"
CLASS = "rlnClassNumber"
POSTERIOR = "rlnMaxValueProbDistribution"
DOG_ZSCORE = "discaDogZScore"
PICK_INDEX = "discaPickIndex"
TOMO_FILE = "discaTomogramFile"
TRUE_CLASS = "discaTrueClass"
TRUE_CLASS_NAME = "discaTrueClassName"
ITEM_ID = "discaItemId"

# ---------------------------------------------------------------- file names
CLUSTERS_STAR = "clusters.star"       # cluster/predict; written LAST: the completion marker
REPORT_JSON = "report.json"           # cluster
SUMMARY_JSON = "summary.json"         # predict
RUN_MANIFEST = "disca-run.json"       # cluster/simulate: the top-level names the engine owns
STAGING_DIR = ".disca-new"            # --overwrite: the new run is written here, then swapped in
PARTICLES_STAR = "particles.star"     # extract, simulate subtomos
EXTRACTION_JSON = "extraction.json"   # extract
SUBTOMOS_DIR = "subtomos"             # extract
FEATURES = "features.npy"
FEATURES_PCA = "features_pca.npy"
DESCRIPTORS = "descriptors.npy"       # auto: under iterations/, the rotation-invariant descriptors
MODEL_DIR = "model"
MODEL_FILES = ("model.keras", "pca.npz", "gmm.npz")
AVERAGES_DIR = "averages"
PLOTS_DIR = "plots"
ITERATIONS_DIR = "iterations"
RESTARTS_DIR = "restarts"
CHECKPOINT_DIR = "checkpoint"
CACHE_DIR = "cache"
REPORT_DIR = "report"

# every top-level name a cluster run writes (what --overwrite may remove, nothing else)
CLUSTER_OUTPUTS = (CLUSTERS_STAR, REPORT_JSON, RUN_MANIFEST, FEATURES, FEATURES_PCA, MODEL_DIR,
                   PLOTS_DIR, ITERATIONS_DIR, RESTARTS_DIR, AVERAGES_DIR, CHECKPOINT_DIR, CACHE_DIR,
                   REPORT_DIR)
PREDICT_OUTPUTS = (CLUSTERS_STAR, SUMMARY_JSON, RUN_MANIFEST, AVERAGES_DIR, CACHE_DIR)


def average_name(class_number):
    """File of class ``class_number`` (1-based) under ``averages/``."""
    return "class_%03d.mrc" % int(class_number)


def average_path(run_dir, class_number):
    import os
    return os.path.join(run_dir, AVERAGES_DIR, average_name(class_number))


def is_finished_run(run_dir):
    """A folder holding clusters.star holds a finished cluster/predict run (written last)."""
    import os
    return os.path.isfile(os.path.join(run_dir, CLUSTERS_STAR))


# ---------------------------------------------------------------- settings
PRESETS = ("paper", "fast", "auto")  # the plugin's form lists them in this order
DEFAULT_PRESET = "auto"
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
MIN_K = 2  # DDBI and the BIC choice need at least two clusters


class KRangeError(EngineError):
    """A K range the user wrote is not usable; the message says why and how to write one."""


def parse_k_range(text):
    """``'2:20'`` -> [2..20]; ``'5,10,20'`` -> [5, 10, 20]; a list passes through.

    The only K-range syntax of the engine and the plugin. Raises KRangeError.
    """
    if isinstance(text, (list, tuple)):
        try:
            values = [int(v) for v in text]
        except (TypeError, ValueError):
            raise KRangeError(f"--k-range {text!r}: candidates must be whole numbers")
        shown = format_k_range(values) if values else "(empty)"
    else:
        shown = str(text).strip()
        values = _parse_k_text(shown)
    if not values:
        raise KRangeError(f"--k-range '{shown}' is empty: give MIN:MAX (e.g. 2:20) or a list like 5,10,20")
    if min(values) < MIN_K:
        raise KRangeError(f"--k-range '{shown}': every candidate K must be at least {MIN_K} "
                          "(one cluster cannot be scored): e.g. 2:20")
    return sorted(set(values))


def _parse_k_text(text):
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
        else:
            return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise KRangeError(f"--k-range '{text}' is not 'MIN:MAX' or a list like '5,10,20'")
    if lo > hi:
        raise KRangeError(f"--k-range '{text}': MIN {lo} is larger than MAX {hi}; write {hi}:{lo}")
    return list(range(lo, hi + 1))


def format_k_range(values):
    """The inverse of :func:`parse_k_range`: '2:20' for a run of consecutive values, else '5,10,20'."""
    ks = sorted(set(int(v) for v in values))
    if len(ks) > 1 and ks == list(range(ks[0], ks[-1] + 1)):
        return f"{ks[0]}:{ks[-1]}"
    return ",".join(map(str, ks))
