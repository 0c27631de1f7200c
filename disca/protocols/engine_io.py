# -*- coding: utf-8 -*-
"""Conversions between Scipion objects and the engine's files (docs/engine-contract.md).

Only numpy and the engine's numpy-only I/O (``disca_engine.io``) are used here, so these
helpers run in Scipion's environment without TensorFlow.
"""
import json
import os
import re

from disca_engine.io.star import StarTable, read_star, write_star

# Column names (without the leading underscore) shared with the engine.
IMAGE = 'rlnImageName'
ITEM_ID = 'discaItemId'
TOMO_NAME = 'rlnTomoName'
TOMO_FILE = 'discaTomogramFile'
COORDS = ('rlnCoordinateX', 'rlnCoordinateY', 'rlnCoordinateZ')
SCORE = 'rlnAutopickFigureOfMerit'
CLASS = 'rlnClassNumber'
POSTERIOR = 'rlnMaxValueProbDistribution'

CLUSTERS_STAR = 'clusters.star'
REPORT_JSON = 'report.json'


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
    if not os.path.isfile(starFile):
        raise EngineOutputError('%s is missing: the engine did not finish; see the log above'
                                % starFile)
    table = read_star(starFile)
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
    return os.path.join(outDir, 'averages', 'class_%03d.mrc' % classNumber)


# ------------------------------------------------------------------ predict in chunks
SUMMARY_JSON = 'summary.json'


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


# ------------------------------------------------------------------ report.json
def readReport(outDir):
    """The engine's report.json as a dict, or None when the run has not finished."""
    path = os.path.join(outDir, REPORT_JSON)
    if not os.path.isfile(path):
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
    iters = report.get('iterations') or []
    lines.append('Chosen iteration %s of %d (lowest DDBI = %s)'
                 % (report.get('chosen_iteration'), len(iters), _fmt(report.get('ddbi'))))
    restarts = report.get('restarts') or []
    if len(restarts) > 1:
        lines.append('Best of %d restarts: restart %s' % (len(restarts), report.get('chosen_restart')))
    if report.get('seconds_total') is not None:
        lines.append('Engine time: %.0f s' % float(report['seconds_total']))
    return lines


def _fmt(value):
    try:
        return '%.3f' % float(value)
    except (TypeError, ValueError):
        return str(value)


PROGRESS_RE = re.compile(r'^\[(?P<stage>[^\]]+)\]\s*(?P<message>.*)$')
ITERATION_RE = re.compile(r'^(restart \d+ )?iteration \d+/\d+: .*')


def lastProgress(logText):
    """Last engine progress line ``[stage] message`` of a log, or None."""
    last = None
    for line in logText.splitlines():
        m = PROGRESS_RE.match(line.strip())
        if m:
            last = (m.group('stage'), m.group('message'))
    return last


def lastIteration(logText):
    """Last ``iteration i/n: K=... DDBI=...`` line the cluster command printed, or None."""
    last = None
    for line in logText.splitlines():
        if ITERATION_RE.match(line.strip()):
            last = line.strip()
    return last


# ------------------------------------------------------------------ user input
def parseClassList(text):
    """'1,3-5' -> [1, 3, 4, 5]; empty -> []. Raises ValueError with the bad token."""
    numbers = []
    for token in re.split(r'[,\s]+', (text or '').strip()):
        if not token:
            continue
        m = re.fullmatch(r'(\d+)(?:-(\d+))?', token)
        if not m:
            raise ValueError("'%s' is not a class number or range (use e.g. 1,3-5)" % token)
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError("range '%s' goes backwards (use %d-%d)" % (token, hi, lo))
        numbers.extend(n for n in range(lo, hi + 1) if n not in numbers)
    return numbers


def parseKRange(text):
    """'2:20' -> (2, 20); '5,10,20' -> [5, 10, 20] (as the engine's --k-range accepts).

    Returns the sorted list of candidate K values for validation.
    """
    text = (text or '').strip()
    m = re.fullmatch(r'(\d+)\s*:\s*(\d+)', text)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo < 1 or hi < lo:
            raise ValueError("K range '%s' must be LOW:HIGH with 1 <= LOW <= HIGH" % text)
        return list(range(lo, hi + 1))
    values = parseClassList(text)
    if not values:
        raise ValueError("K range '%s' is empty: use e.g. 2:20 or 5,10,20" % text)
    return sorted(values)


def kRangeArgument(text):
    """Engine --k-range value from the form text ('2:20' stays, '5, 10' -> '5,10')."""
    text = (text or '').strip()
    if ':' in text:
        return text.replace(' ', '')
    return ','.join(str(k) for k in parseKRange(text))
