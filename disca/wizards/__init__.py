# -*- coding: utf-8 -*-
"""Wizards of the DISCA protocols: box size from the particle size, DoG pick preview."""
from .box_size import DiscaBoxSizeWizard, DiscaExtractBoxWizard
from .dog_preview import DiscaDogPreviewWizard
