# -*- coding: utf-8 -*-
"""DISCA protocols: DoG picking, subtomogram extraction, clustering, classification, export."""
from .protocol_cluster import DiscaProtCluster
from .protocol_classify import DiscaProtClassify
from .protocol_export import DiscaProtExport
