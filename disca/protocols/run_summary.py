# -*- coding: utf-8 -*-
"""The engine's report.json as summary and methods text."""
import json
import os

from disca_engine.contract import REPORT_JSON, is_finished_run


def readReport(outDir):
    """The engine's report.json as a dict, or None when the run has not finished (a
    finished run has clusters.star, which the engine writes last)."""
    path = os.path.join(outDir, REPORT_JSON)
    if not is_finished_run(outDir) or not os.path.isfile(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def reportSummary(report):
    """Short human lines (K, sizes, chosen iteration, DDBI) for _summary/_methods."""
    if not report:
        return []
    sizes = report.get('cluster_sizes') or []
    lines = ['K = %s clusters from %s subtomograms (box %s, preset %s)'
             % (report.get('k'), report.get('n_particles'), report.get('box_size'),
                report.get('preset'))]
    if sizes:
        lines.append('Cluster sizes: ' + ', '.join('%d: %d' % (i + 1, s) for i, s in enumerate(sizes)))
    lines += verdictSummary(report)
    iters = report.get('iterations') or []
    lines.append('Chosen iteration %s of %d (lowest DDBI = %s)'
                 % (report.get('chosen_iteration'), len(iters), formatNumber(report.get('ddbi'))))
    restarts = report.get('restarts') or []
    if len(restarts) > 1:
        lines.append('Best of %d restarts: restart %s' % (len(restarts), report.get('chosen_restart')))
    if report.get('seconds_total') is not None:
        lines.append('Engine time: %.0f s' % float(report['seconds_total']))
    return lines


def verdictSummary(report):
    """'Structures: ...' and 'Junk-like: ...' lines, each cluster as 'N (resolution, size)',
    structures first then by resolution, as report.json ``clusters`` lists them."""
    rows = (report or {}).get('clusters') or []
    if not rows:
        return []
    unit = 'Å' if report.get('voxel_size') else 'voxels'

    def item(r):
        res = r.get('resolution_A')
        text = ('%s%.0f %s' % ('<=' if r.get('nyquist_limited') else '', res, unit)
                if res is not None else 'no resolution')
        return '%d (%s, %d)' % (r['cluster'], text, r['size'])
    lines = []
    for verdict, label in (('structure', 'Structure-like clusters'),
                           ('junk-like', 'Junk-like clusters')):
        chosen = [item(r) for r in rows if r['verdict'] == verdict]
        if chosen:
            lines.append('%s (cluster (resolution, size)): %s' % (label, ', '.join(chosen)))
    return lines


def formatNumber(value):
    try:
        return '%.3f' % float(value)
    except (TypeError, ValueError):
        return str(value)
