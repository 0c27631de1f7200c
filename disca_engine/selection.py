"""Selection files: subtomograms chosen by hand in the report's embedding (issue 24).

A tab-separated text file the report page writes (``disca-selection.tsv``)::

    # DISCA selection: rows of clusters.star chosen in the report's embedding
    # clusters: /abs/run/clusters.star
    # lasso on network features (t-SNE): 12 of 2000 points shown
    row	rlnImageName	discaItemId	rlnClassNumber
    5	/abs/run/subtomos/p_0004.mrc	17	2

``row`` is the 1-based row of ``clusters.star``; ``rlnImageName`` must be that row's image
name (so a selection made on another run is refused, not silently applied); ``discaItemId``
(Scipion's object id, empty outside Scipion) and ``rlnClassNumber`` are informative. Tabs,
because image names may hold spaces. Read by ``disca-engine subset`` and by the Scipion export
protocol. Imports no numpy, so the plugin reads it from Scipion's environment too.
"""
import os

from .contract import CLASS, IMAGE, ITEM_ID
from .errors import EngineError

COLUMNS = ("row", IMAGE, ITEM_ID, CLASS)
TITLE = "# DISCA selection: rows of clusters.star chosen in the report's embedding"


class SelectionError(EngineError):
    """A file that is not a selection, or one that does not fit the clusters it is used on."""


class Selection:
    """rows (1-based), image names, item ids ('' where none) and classes ('' where none)
    of a selection file; ``clusters``: the clusters.star it was made from (or None)."""

    def __init__(self, rows, names, item_ids, classes, clusters=None):
        self.rows, self.names, self.item_ids, self.classes = rows, names, item_ids, classes
        self.clusters = clusters

    def __len__(self):
        return len(self.rows)


def format_selection(rows, names, item_ids, classes, clusters, note):
    """The text of a selection file (the page's JavaScript writes the same)."""
    lines = [TITLE, f"# clusters: {clusters}", f"# {note}", "\t".join(COLUMNS)]
    lines += ["\t".join(str(v) for v in row) for row in zip(rows, names, item_ids, classes)]
    return "\n".join(lines) + "\n"


def _bad(path, why):
    return SelectionError(f"{path} is not a DISCA selection file ({why}): save it again from the "
                          "report's embedding (Download selection)")


def read_selection(path):
    """Parse ``path``; raises SelectionError (one line) for anything else."""
    if not os.path.isfile(path):
        raise SelectionError(f"selection file {path} not found")
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise _bad(path, f"unreadable: {exc.__class__.__name__}")
    clusters, header, body = None, None, []
    for n, line in enumerate(lines, 1):
        if line.startswith("# clusters:"):
            clusters = line.split(":", 1)[1].strip() or None
        elif line.startswith("#") or not line.strip():
            continue
        elif header is None:
            header = line.rstrip("\r").split("\t")
        else:
            body.append((n, line.rstrip("\r").split("\t")))
    if header is None or header[:2] != list(COLUMNS[:2]):
        raise _bad(path, "no 'row<TAB>rlnImageName' header line")
    return _parse_rows(path, header, body, clusters)


def _parse_rows(path, header, body, clusters):
    col = {name: header.index(name) for name in COLUMNS if name in header}
    rows, names, ids, classes = [], [], [], []
    for n, fields in body:
        if len(fields) < 2 or not fields[0].strip().isdigit() or int(fields[0]) < 1:
            raise _bad(path, f"line {n}: expected a row number >= 1, a tab and an image name")
        rows.append(int(fields[0]))
        names.append(fields[1])
        ids.append(_field(fields, col.get(ITEM_ID)))
        classes.append(_field(fields, col.get(CLASS)))
    if not rows:
        raise SelectionError(f"{path} selects no subtomogram: select some points in the "
                             "report's embedding first")
    if len(set(rows)) != len(rows):
        raise _bad(path, "a row is listed twice")
    return Selection(rows, names, ids, classes, clusters)


def _field(fields, index):
    return fields[index].strip() if index is not None and index < len(fields) else ""


def check_against(selection, table, star_path, path):
    """0-based indices into ``table`` (the particles of ``star_path``) of the selection's
    rows, after checking that each row holds the image the selection names."""
    n = len(table)
    names = table[IMAGE]
    for row, name in zip(selection.rows, selection.names):
        if row > n:
            raise SelectionError(f"{path} selects row {row} but {star_path} has {n} rows: the "
                                 "selection was made on another run")
        if names[row - 1] != name:
            raise SelectionError(f"{path}: row {row} is {name} but in {star_path} it is "
                                 f"{names[row - 1]}: the selection was made on another run")
    return [r - 1 for r in selection.rows]
