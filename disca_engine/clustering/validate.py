"""Settings that cannot make a run, refused before anything is read or written."""
from .. import contract
from ..errors import EngineError

# setting -> (command-line flag, smallest allowed value)
MINIMUM = {
    "max_iterations": ("--max-iterations", 1),
    "restarts": ("--restarts", 1),
    "batch_size": ("--batch-size", 1),
    "epochs_per_iteration": ("--epochs-per-iteration", 1),
    "pca_components": ("--pca-components", 1),
    "seed": ("--seed", 0),
    "threads": ("--threads", 1),
    # alignment classification of the default preset (settings, no command-line flags)
    "align_rotations": ("setting align_rotations", 24),
    "align_coarse": ("setting align_coarse", 8),
    "align_rounds": ("setting align_rounds", 1),
    "align_pose_top": ("setting align_pose_top", 1),
    "align_split_passes": ("setting align_split_passes", 0),
    "align_split_min": ("setting align_split_min", 2),
}

# on/off settings of the default method: a JSON string such as "false" would count as on
SWITCHES = ("invariant_angular", "align_classes", "align_disattenuate", "align_merge_joint",
            "align_merge_keep_larger", "align_polish")


def check_settings(cfg):
    for key, (flag, low) in MINIMUM.items():
        value = cfg.get(key)
        if value is not None and int(value) < low:
            raise EngineError(f"{flag} {value}: must be at least {low}")
    if cfg.get("learning_rate") is not None and not float(cfg["learning_rate"]) > 0:
        raise EngineError(f"--learning-rate {cfg['learning_rate']}: must be positive (e.g. 1e-3)")
    merge = cfg.get("align_merge")
    if merge is not None and not 0 < float(merge) <= 2:
        raise EngineError(f"setting align_merge {merge}: must be in (0, 2] (1 = as similar as two "
                          "averages of one structure; the default 0.8)")
    for key in ("align_coarse_shift", "align_pose_shift"):
        if cfg.get(key) is not None and not 0 <= int(cfg[key]) <= 3:
            raise EngineError(f"setting {key} {cfg[key]}: must be 0 to 3 coarse voxels (the cost "
                              "grows as (2t+1)^3; the default is enough for shifts of a few voxels)")
    count = cfg.get("align_merge_min_count")
    if count is not None and not 0 < float(count) <= 100:
        raise EngineError(f"setting align_merge_min_count {count}: must be in (0, 100] members "
                          "(Fourier voxels measured by fewer members are left out of the merge test)")
    for key, meaning, default in (
            ("align_junk_split", "how near noise a low-scoring group must be to split off", 0.2),
            ("align_junk_spectrum", "how much less of the class's power spectrum a low-scoring "
                                    "group's boxes must hold to split off", 0.8)):
        value = cfg.get(key)
        if value is not None and (isinstance(value, (bool, str)) or not 0 <= float(value) < 1):
            raise EngineError(f"setting {key} {value!r}: must be a number in [0, 1) ({meaning}; "
                              f"0 = off, the default {default})")
    for key in SWITCHES:
        if key in cfg and not isinstance(cfg[key], bool):
            raise EngineError(f"setting {key} {cfg[key]!r}: must be true or false (JSON booleans, "
                              "not strings or numbers)")
    if cfg.get("precision") not in contract.PRECISIONS:
        raise EngineError(f"precision '{cfg.get('precision')}': choose one of {', '.join(contract.PRECISIONS)}")


def smallest_box(preset=None):
    """Smallest subtomogram box (voxels) the network of ``preset`` accepts (its valid 3x3x3
    convolutions each take 2 voxels), or of every preset when None."""
    from .presets import PRESETS
    names = [preset] if preset else list(PRESETS)
    return max(2 * len(PRESETS[name]["widths"]) + 1 for name in names)
