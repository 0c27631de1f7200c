"""The settings of a clustering run, each defined once: frozen settings per stage of the
method (``stages``), the presets as values of them (``presets``), the user's overrides and
their validation (``resolve``), and the rules that read them (``rules``). Run options (how
and where a run computes) are kept apart from the method.

Standard library only: the Scipion plugin imports this package (and ``contract``) into its
own environment, which has no TensorFlow. Values a run works out from the data (the K range
N supports, the precision used) live in the run, never in these objects.

Every setting has one default: a field default (shared by every preset that has the stage)
or, where presets differ, no field default and a value in each preset.
"""
from .presets import PRESETS
from .resolve import Settings, check, resolve
from .rules import (as_dict, check_box, check_k_range, learning_rate, pca_components_for,
                    preset_values, smallest_box)
from .stages import RESULT_OPTIONS
from .stages import (Alignment, Classification, Descriptors, FeaturePCA, JunkSplit, KByBic, Loop,
                     MergeTest, Method, Network, ParticleMask, Rest, RunOptions, Seeds)

__all__ = ["PRESETS", "RESULT_OPTIONS", "Settings", "check", "resolve", "as_dict", "check_box", "check_k_range",
           "learning_rate", "pca_components_for", "preset_values", "smallest_box", "Alignment",
           "Classification", "Descriptors", "FeaturePCA", "JunkSplit", "KByBic", "Loop",
           "MergeTest", "Method", "Network", "ParticleMask", "Rest", "RunOptions", "Seeds"]
