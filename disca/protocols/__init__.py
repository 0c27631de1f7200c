# -*- coding: utf-8 -*-
"""DISCA protocols: DoG picking, subtomogram extraction, clustering, classification, export."""
