# -*- coding: utf-8 -*-
"""Scipion sets <-> the engine's STAR files (docs/engine-contract.md).

Only the engine's numpy-only modules are used, so this runs in Scipion's environment
without TensorFlow. Column and file names come from ``disca_engine.contract``.
"""
import os
import re

from disca_engine.contract import (CLASS, COORDS, IMAGE, ITEM_ID, POSTERIOR, SCORE, TOMO_FILE,
                                   TOMO_NAME, average_path)
from disca_engine.io.star import StarTable, read_particles, write_star


class EngineOutputError(Exception):
    """The engine's output folder is missing something or disagrees with the input."""


# ------------------------------------------------------------------ Scipion -> STAR
def imageName(item):
    """RELION image reference of a Scipion volume: ``path`` or ``N@stack`` (absolute)."""
    index, fileName = item.getLocation()
    fileName = os.path.abspath(re.sub(r':mrcs?$', '', fileName))
    # Scipion uses index 0 (NO_INDEX) for single volumes; a stack member has index >= 1
    # and its file ends in .mrcs (single .mrc volumes may carry index 1 too).
    if index and fileName.endswith('.mrcs'):
        return '%d@%s' % (index, fileName)
    return fileName


def _coordinateColumns(subtomo):
    """(tomoName, tomoFile, x, y, z, score) of the subtomogram's coordinate, or None."""
    coord = subtomo.getCoordinate3D() if subtomo.hasCoordinate3D() else None
    if coord is None:
        return None
    from tomo.constants import BOTTOM_LEFT_CORNER
    tomo = coord.getVolume()
    tomoName = coord.getTomoId() or subtomo.getVolName()
    if tomo is None:  # coordinate stored without its tomogram: no origin to convert with
        return tomoName, '', None, None, None, coord.getScore()
    xyz = (coord.getX(BOTTOM_LEFT_CORNER), coord.getY(BOTTOM_LEFT_CORNER),
           coord.getZ(BOTTOM_LEFT_CORNER))
    return (tomoName, os.path.abspath(tomo.getFileName()), xyz[0], xyz[1], xyz[2],
            coord.getScore())


class ParticleTableBuilder:
    """Accumulates particles-STAR rows (engine contract) one subtomogram at a time.

    Values are read at once because Scipion set iterators reuse one item object. The tomogram
    file and coordinates (0-based voxels of the tomogram) are written when every row has a
    coordinate linked to its tomogram; ``_discaItemId`` holds the Scipion object id.
    """

    def __init__(self):
        self.cols = {IMAGE: [], ITEM_ID: []}
        self.extra = []
        self.more = {}

    def add(self, subtomo, **moreColumns):
        self.cols[IMAGE].append(imageName(subtomo))
        self.cols[ITEM_ID].append(str(subtomo.getObjId()))
        self.extra.append(_coordinateColumns(subtomo))
        for key, value in moreColumns.items():
            self.more.setdefault(key, []).append(str(value))

    def __len__(self):
        return len(self.cols[IMAGE])

    def table(self, name='particles'):
        cols, extra = dict(self.cols), self.extra
        if extra and all(e is not None for e in extra):
            cols[TOMO_NAME] = [e[0] for e in extra]
            if all(e[2] is not None for e in extra):
                cols[TOMO_FILE] = [e[1] for e in extra]
                for axis, key in enumerate(COORDS):
                    cols[key] = ['%.2f' % e[2 + axis] for e in extra]
                cols[SCORE] = ['%.6g' % (e[5] or 0.0) for e in extra]
        cols.update(self.more)
        return StarTable(cols, name=name)


def subtomogramsToTable(subtomos):
    """Particles table of a SetOfSubTomograms (or any iterable of subtomograms), in order."""
    builder = ParticleTableBuilder()
    iterator = subtomos.iterSubtomos() if hasattr(subtomos, 'iterSubtomos') else subtomos
    for subtomo in iterator:
        builder.add(subtomo)
    if not len(builder):
        raise EngineOutputError('the input set of subtomograms is empty')
    return builder.table()


def writeParticlesStar(subtomos, starFile):
    """Write the particles STAR the engine reads; returns the number of rows."""
    table = subtomogramsToTable(subtomos)
    write_star(starFile, table, comment='written by scipion-em-disca from a SetOfSubTomograms')
    return len(table)


# ------------------------------------------------------------------ STAR -> Scipion
def readClusters(starFile):
    """{objId: (classNumber, posterior)} from the engine's clusters.star."""
    if not os.path.isfile(starFile):  # written last by the engine: its completion marker
        raise EngineOutputError('%s is missing: the engine did not finish; see the log above'
                                % starFile)
    table = read_particles(starFile)
    for key in (ITEM_ID, CLASS):
        if key not in table:
            raise EngineOutputError('%s has no _%s column' % (starFile, key))
    posteriors = table[POSTERIOR] if POSTERIOR in table else ['nan'] * len(table)
    result = {}
    for itemId, cls, post in zip(table[ITEM_ID], table[CLASS], posteriors):
        result[int(itemId)] = (int(cls), float(post))
    if len(result) != len(table):
        raise EngineOutputError('%s repeats _%s values' % (starFile, ITEM_ID))
    return result


def checkAllAssigned(assignment, objIds):
    """Raise unless every input object id got a class (nothing silently dropped)."""
    missing = [i for i in objIds if i not in assignment]
    if missing:
        raise EngineOutputError('%d subtomograms have no class in the engine output (first ids: %s)'
                                % (len(missing), ', '.join(map(str, missing[:5]))))


def averagePath(outDir, classNumber):
    """The engine's average of class ``classNumber`` (1-based) in a run folder."""
    return average_path(outDir, classNumber)
