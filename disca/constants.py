# -*- coding: utf-8 -*-
"""Names shared by the DISCA plugin: version, plugin variables, outputs and form choices.
Names shared with the engine (files, STAR columns, presets, precisions) live in
disca_engine.contract."""
from disca_engine.contract import PRECISIONS, PRESETS

# Version of the plugin and of the bundled engine environment (disca-<version>).
DISCA_VERSION = '0.1.0'

# ---- Plugin variables (Scipion config / environment) ----
DISCA_ENV_HOME = 'DISCA_ENV_HOME'   # folder of the bundled engine venv
DISCA_CUDA = 'DISCA_CUDA'           # '1': install tensorflow[and-cuda] instead of tensorflow-cpu
DISCA_ENGINE = 'DISCA_ENGINE'       # optional path to an existing disca-engine executable
DISCA_ENV_NAME = 'disca-%s' % DISCA_VERSION
DISCA_PACKAGE = 'disca'             # name used by `scipion installb disca`
ENGINE_PROGRAM = 'disca-engine'
# File created in the env folder once the engine env is complete (installb target).
ENV_READY_MARKER = 'DISCA_ENV_READY'

TF_PACKAGE_CPU = 'tensorflow-cpu'
TF_PACKAGE_CUDA = 'tensorflow[and-cuda]'

# ---- Output names (also used through each protocol's _possibleOutputs) ----
OUTPUT_COORDINATES = 'coordinates'
OUTPUT_SUBTOMOGRAMS = 'subtomograms'
OUTPUT_CLASSES = 'classes'

# ---- Enums of the forms ----
# Particle contrast in the tomogram.
CONTRAST_DARK = 0
CONTRAST_BRIGHT = 1
CONTRAST_CHOICES = ['dark', 'bright']

# Picking threshold mode.
THRESHOLD_AUTO = 0
THRESHOLD_MANUAL = 1
THRESHOLD_CHOICES = ['automatic', 'manual']

# Clustering presets.
PRESET_PAPER = 0
PRESET_FAST = 1
PRESET_AUTO = 2
PRESET_CHOICES = list(PRESETS)

# Numerical precision of the network (the engine's --precision choices).
PRECISION_CHOICES = list(PRECISIONS)

# How the auto preset classifies the subtomograms outside its subsample (--rest-by).
REST_BY_CHOICES = ['network', 'alignment']

# Box size suggested from the particle diameter: box = BOX_DIAMETER_FACTOR * diameter,
# rounded up to an even number of voxels, at least MIN_BOX (YOPO needs s >= 21).
BOX_DIAMETER_FACTOR = 1.5
MIN_BOX = 24
DEFAULT_BOX = 24

# Install hint shown when the engine environment is missing.
INSTALL_HINT = ('scipion3 installb %s  (or: python -m scipion installb %s)'
                % (DISCA_PACKAGE, DISCA_PACKAGE))
