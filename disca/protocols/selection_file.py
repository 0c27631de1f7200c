# -*- coding: utf-8 -*-
"""A selection file from the report's embedding (disca_engine/selection.py) -> the Scipion
object ids it names, checked against the classes being exported."""
import os

from disca_engine.selection import SelectionError, read_selection


def selectedItemIds(path):
    """Object ids (``discaItemId``) of a selection file, as a set. Raises ValueError with one
    line: not a selection file, or one made outside Scipion (no item ids)."""
    try:
        selection = read_selection(os.path.expanduser(path))
    except SelectionError as exc:
        raise ValueError(str(exc))
    if not all(i.isdigit() for i in selection.item_ids):
        raise ValueError('%s has rows without a discaItemId: it was made from a run outside '
                         'Scipion; select in the report of this project\'s clustering' % path)
    return {int(i) for i in selection.item_ids}


def classesOfItems(classes, itemIds):
    """{class number: number of selected items in it} and the ids found in no class."""
    counts, found = {}, set()
    for cls in classes.iterItems():
        for subtomo in cls.iterSubtomos():
            if subtomo.getObjId() in itemIds:
                counts[cls.getObjId()] = counts.get(cls.getObjId(), 0) + 1
                found.add(subtomo.getObjId())
    return counts, itemIds - found
