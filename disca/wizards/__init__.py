# -*- coding: utf-8 -*-
"""Wizards of the DISCA protocols: box sizes, DoG pick preview, clusters to export."""
from .box_size import DiscaBoxSizeWizard, DiscaExtractBoxWizard
from .dog_preview import DiscaDogPreviewWizard
from .cluster_picker import DiscaClusterPickerWizard
