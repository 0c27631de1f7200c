# -*- coding: utf-8 -*-
"""DISCA protocols: DoG picking, subtomogram extraction, clustering, classification, export."""
from .protocol_dog_picking import DiscaProtDogPicking
from .protocol_extract import DiscaProtExtract
from .protocol_cluster import DiscaProtCluster
from .protocol_classify import DiscaProtClassify
from .protocol_export import DiscaProtExport
