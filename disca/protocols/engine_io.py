# -*- coding: utf-8 -*-
"""Former home of the plugin's engine helpers, now split by purpose: conversion.py (Scipion
sets <-> STAR), run_summary.py (report.json text), engine_log.py (log
lines), form_parsers.py (form texts), predict_chunks.py (classification steps). Re-exported only so that branches written against
the old module still import; new code imports the modules above."""
from disca_engine.contract import CLASS, CLUSTERS_STAR, IMAGE, ITEM_ID, POSTERIOR, REPORT_JSON  # noqa: F401

from .conversion import (EngineOutputError, ParticleTableBuilder, averagePath,  # noqa: F401
                         checkAllAssigned, imageName, readClusters, subtomogramsToTable,
                         writeParticlesStar)
from .engine_log import lastIteration  # noqa: F401
from .form_parsers import kRangeArgument, parseClassList, parseKRange  # noqa: F401
from .predict_chunks import mergePredictions, planChunks, tomogramNameOf  # noqa: F401
from .run_summary import readReport, reportSummary  # noqa: F401
