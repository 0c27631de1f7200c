# -*- coding: utf-8 -*-
"""DISCA viewers (discovered by pwem as ``disca.viewers``)."""
from .viewer_cluster import DiscaClusterViewer
from .viewer_picking import DiscaPickingViewer
