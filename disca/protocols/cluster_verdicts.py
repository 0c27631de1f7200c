# -*- coding: utf-8 -*-
"""Each cluster's verdict (structure / junk-like), resolution and reason, from the engine's
report.json ``clusters`` onto the Scipion classes, and back as the rows the export, its
wizard, the viewer and the summaries list (structures first, then by resolution)."""
from pyworkflow.object import Float, String

VERDICT_ATTR = '_disca_verdict'
RESOLUTION_ATTR = '_disca_resolution'      # Å; unset: FSC under 0.143 from the first shell
REASON_ATTR = '_disca_reason'
STRUCTURE = 'structure'                    # disca_engine.clustering.verdicts.STRUCTURE


def reportRows(report):
    """{class number: report.json ``clusters`` row}; empty for runs without verdicts."""
    return {int(r['cluster']): r for r in (report or {}).get('clusters') or []}


def setClassVerdict(classItem, row):
    """The row's verdict, resolution and reason as attributes of a Scipion class. Every
    class gets all three (empty without a row or a resolution): a set's columns are those
    of its first item."""
    row = row or {}
    setattr(classItem, VERDICT_ATTR, String(row.get('verdict')))
    setattr(classItem, REASON_ATTR, String(row.get('reason')))
    setattr(classItem, RESOLUTION_ATTR, Float(row.get('resolution_A')))


def _value(obj, name):
    attr = getattr(obj, name, None)
    return attr.get() if attr is not None and attr.hasValue() else None


def classRows(classes):
    """[(number, size, verdict or None, resolution Å or None, reason or '')] of a set of
    classes, structures first, then by resolution (best first), then by number."""
    rows = [(cls.getObjId(), cls.getSize(), _value(cls, VERDICT_ATTR),
             _value(cls, RESOLUTION_ATTR), _value(cls, REASON_ATTR) or '')
            for cls in classes.iterItems(orderBy='id')]
    return sorted(rows, key=sortKey)


def sortKey(row):
    number, _, verdict, resolution = row[:4]
    return (verdict != STRUCTURE, float('inf') if resolution is None else resolution, number)


def hasVerdicts(rows):
    return any(r[2] is not None for r in rows)


def structureNumbers(rows):
    """Class numbers judged structures, increasing."""
    return sorted(r[0] for r in rows if r[2] == STRUCTURE)


def rowText(row):
    """'cluster 3: structure, 38 Å, 40 subtomograms (FSC 0.143 at 38 Å; ...)'."""
    number, size, verdict, resolution, reason = row
    if verdict is None:
        return 'cluster %d: %d subtomograms (no verdict)' % (number, size)
    res = '%.0f Å' % resolution if resolution is not None else 'no resolution'
    return 'cluster %d: %s, %s, %d subtomograms (%s)' % (number, verdict, res, size, reason)
