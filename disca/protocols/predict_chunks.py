# -*- coding: utf-8 -*-
"""Classification in parallel steps: which subtomograms each ``predict`` step gets, and one
output merged from the steps' folders (numpy + mrcfile; no TensorFlow)."""
import json
import os

from disca_engine.contract import CLUSTERS_STAR, SUMMARY_JSON
from disca_engine.io.star import StarTable, read_star, write_star

from .conversion import EngineOutputError, averagePath


def tomogramNameOf(subtomo):
    """Name of the tomogram a subtomogram was cut from ('' when unknown)."""
    coord = subtomo.getCoordinate3D() if subtomo.hasCoordinate3D() else None
    name = (coord.getTomoId() if coord is not None else None) or subtomo.getVolName()
    return name or ''


def planChunks(tomoNames, chunkSize=0):
    """Row indices of each predict step: consecutive chunks of ``chunkSize`` rows when it is
    > 0, else one chunk per tomogram (in order of first appearance; all rows in one chunk
    when no tomogram is known)."""
    n = len(tomoNames)
    if chunkSize and chunkSize > 0:
        return [list(range(a, min(a + chunkSize, n))) for a in range(0, n, chunkSize)]
    groups = {}
    for i, name in enumerate(tomoNames):
        groups.setdefault(name, []).append(i)
    return list(groups.values())


def mergePredictions(chunkDirs, outDir, voxelSize=None):
    """One output from the ``predict`` folders of the chunks: their clusters.star rows
    concatenated in chunk order, each class average the member-weighted mean of the chunks'
    averages (the engine wrote them; no subtomogram is read again) and a summary.json with
    the summed counts. Returns {class number: members}."""
    import numpy as np
    from disca_engine.io.mrc import read_volume, write_volume
    tables, counts, sums = [], {}, {}
    for folder in chunkDirs:
        star = os.path.join(folder, CLUSTERS_STAR)
        summaryPath = os.path.join(folder, SUMMARY_JSON)
        if not (os.path.isfile(star) and os.path.isfile(summaryPath)):
            raise EngineOutputError('%s has no finished predict output (%s, %s): rerun the protocol '
                                    'with "Continue"' % (folder, CLUSTERS_STAR, SUMMARY_JSON))
        tables.append(read_star(star))
        with open(summaryPath) as fh:
            chunkCounts = {int(c): int(m) for c, m in json.load(fh)['counts'].items() if int(m)}
        for cls, members in chunkCounts.items():
            average = np.asarray(read_volume(averagePath(folder, cls)), np.float64)
            sums[cls] = sums.get(cls, 0.0) + members * average
            counts[cls] = counts.get(cls, 0) + members
    columns = {key: [v for t in tables for v in t[key]] for key in tables[0].columns}
    write_star(os.path.join(outDir, CLUSTERS_STAR), StarTable(columns, name=tables[0].name),
               comment='merged from %d predict steps' % len(tables))
    for cls in sorted(sums):
        write_volume(averagePath(outDir, cls), sums[cls] / counts[cls], voxel_size=voxelSize)
    with open(os.path.join(outDir, SUMMARY_JSON), 'w') as fh:
        json.dump({'chunks': len(tables), 'n_particles': sum(counts.values()),
                   'counts': {str(c): counts[c] for c in sorted(counts)}}, fh, indent=1)
    return counts
