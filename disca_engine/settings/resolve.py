"""A run's request: a preset with the user's overrides, validated in one line each."""
from dataclasses import dataclass, fields, is_dataclass, replace

from .. import contract
from ..errors import EngineError
from .presets import PRESETS
from .stages import Method, RunOptions

# the command line's flags that set one field of a stage: name -> (stage, field)
FLAT = {"max_iterations": ("loop", "max_iterations"),
        "pca_components": ("feature_pca", "components"),
        "batch_size": ("network", "batch_size"),
        "epochs_per_iteration": ("network", "epochs_per_iteration"),
        "learning_rate": ("network", "learning_rate"),
        "particle_diameter_A": ("mask", "diameter_A"),
        "subsample": ("alignment", "max_n"),
        "rest_by": ("rest", "by")}
STAGES = ("network", "loop", "feature_pca", "k_by_bic")
CLASSIFICATION_STAGES = ("mask", "descriptors", "seeds", "alignment", "merge_test", "junk_split",
                         "rest")
OPTIONS = tuple(f.name for f in fields(RunOptions))


@dataclass(frozen=True)
class Settings:
    """A run's request: the method, the run options, and which K range the user gave."""
    method: Method
    options: RunOptions
    k_range_given: bool = False


def resolve(preset=contract.DEFAULT_PRESET, **overrides):
    """The preset's method with the explicit (non-None) overrides, validated. Overrides are
    the command line's names (``k_range``, ``max_iterations``, ``pca_components``,
    ``batch_size``, ``epochs_per_iteration``, ``learning_rate``, ``relabel``,
    ``junk_split``, ``min_cluster_size``), run options (``seed``, ``threads``, ...) or a
    dict of fields for one stage (``network={'widths': [8, 8]}``, ``alignment={...}``)."""
    if preset not in PRESETS:
        raise EngineError(f"unknown preset '{preset}': choose one of {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    method = _override_method(PRESETS[preset], given)
    options = RunOptions(**{k: given[k] for k in OPTIONS if k in given})
    check(method, options)
    return Settings(method, options, "k_range" in given)


def _override_method(method, given):
    changes = {}
    for name, value in given.items():
        if name in FLAT:
            stage, key = FLAT[name]
            changes.setdefault(stage, {})[key] = value
        elif name == "junk_split" and value is False:
            continue  # the switch --no-junk-split: handled below
        elif name in STAGES or name in CLASSIFICATION_STAGES:
            if not isinstance(value, dict):
                raise TypeError(f"setting {name}: give a dict of its fields")
            changes.setdefault(name, {}).update(value)
        elif name not in OPTIONS + ("k_range", "relabel", "min_cluster_size"):
            raise TypeError(f"unknown setting: {name}")
    if "pca_components" in given:  # an explicit size is used as given
        changes["feature_pca"]["per_subtomograms"] = None
    out = {stage: _replace_fields(getattr(method, stage), stage, fields_)
           for stage, fields_ in changes.items() if stage in STAGES}
    if "k_range" in given:
        out["k_range"] = tuple(contract.parse_k_range(given["k_range"]))
    if "min_cluster_size" in given:
        out["min_cluster_size"] = given["min_cluster_size"]
    method = replace(method, **out)
    classification = {k: v for k, v in changes.items() if k in CLASSIFICATION_STAGES}
    switches = {k: given[k] for k in ("relabel",) if k in given}
    if given.get("junk_split") is False:
        switches["junk_split"] = None
    if classification or switches:
        method = replace(method, classification=_override_classification(
            method, classification, switches))
    return method


def _override_classification(method, changes, switches):
    c = method.classification
    if c is None:
        what = ", ".join(sorted(changes) + [f"--no-{k.replace('_', '-')}" for k in switches])
        what = what.replace("--no-relabel", "--no-relabel" if switches.get("relabel") is False
                            else "relabel")
        raise EngineError(f"{what}: the {method.preset} preset has no classification stages "
                          "(only auto has); drop them or use --preset auto")
    out = dict(switches)
    for stage, values in changes.items():
        out[stage] = _replace_fields(getattr(c, stage), stage, values)
    return replace(c, **out)


def _replace_fields(obj, stage, values):
    if obj is None:
        raise EngineError(f"settings of {stage}: this preset has no {stage} stage")
    known = {f.name for f in fields(obj)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise EngineError(f"unknown setting {stage}.{unknown[0]}: {stage} has "
                          f"{', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return replace(obj, **values)


# ---------------------------------------------------------------------------- validation
def check(method, options):
    """Refuse settings that cannot make a run, in one line naming the setting and the fix."""
    for path, obj in _stages(method):
        for f in fields(obj):
            rule = f.metadata.get("check")
            value = getattr(obj, f.name)
            if rule is not None and not rule.accepts(value):
                _refuse(path + f.name, f, value, rule)
    for f in fields(options):
        rule = f.metadata.get("check")
        if rule is not None and not rule.accepts(getattr(options, f.name)):
            _refuse(f.name, f, getattr(options, f.name), rule)
    if options.precision not in contract.PRECISIONS:
        raise EngineError(f"--precision {options.precision}: choose one of "
                          f"{', '.join(contract.PRECISIONS)}")


def _stages(method):
    """(dotted prefix, settings object) of every stage the method runs, the method first."""
    out = [("", method)]
    for f in fields(method):
        value = getattr(method, f.name)
        if is_dataclass(value):
            out.append((f.name + ".", value))
            out += [(f"{f.name}.{g.name}.", getattr(value, g.name)) for g in fields(value)
                    if is_dataclass(getattr(value, g.name))]
    return out


def _refuse(name, f, value, rule):
    flag = f.metadata.get("flag")
    what = f"{flag} {value}" if flag else f"setting {name} {value!r}"
    why = f.metadata.get("why")
    raise EngineError(f"{what}: must be {rule.describe()}" + (f" ({why})" if why else ""))
