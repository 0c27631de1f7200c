"""STAR reader/writer for the loop tables the engine uses, keeping every other block.

A table is a ``dict`` of column name (without the leading underscore, e.g.
``rlnImageName``) to a list of strings, plus the block name. Values stay strings;
callers convert what they need (see :func:`column`). Files as RELION 3.1, 4 and 5 write
them (``data_general`` pairs, ``data_optics``, ``data_particles``) are read, and
:func:`read_blocks` + ``write_star(..., blocks=...)`` write the blocks the engine does
not change back exactly as they were, so RELION reads an output as it read the input.

Why not the ``starfile`` package: it needs pandas, which Scipion's environment (where
the picking and extraction protocols import this module) does not have.
"""
import os

import numpy as np

from ..errors import EngineError
from .atomic import atomic_path


class StarTable:
    def __init__(self, columns=None, name="particles"):
        self.name = name
        self.columns = {k: [str(v) for v in vals] for k, vals in (columns or {}).items()}
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError("STAR columns have different lengths")

    def __len__(self):
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __contains__(self, key):
        return key in self.columns

    def __getitem__(self, key):
        return self.columns[key]

    def __setitem__(self, key, values):
        values = [_fmt(v) for v in values]
        if self.columns and len(values) != len(self):
            raise ValueError(f"column {key} has {len(values)} rows, table has {len(self)}")
        self.columns[key] = values

    def column(self, key, dtype=str, path=None):
        if key not in self.columns:
            where = f" in {path}" if path else ""
            raise EngineError(f"STAR column _{key} is missing{where}; present: "
                              + ", ".join("_" + c for c in self.columns))
        if dtype is str:
            return list(self.columns[key])
        try:
            return np.asarray(self.columns[key], dtype=float).astype(dtype)
        except ValueError:
            raise EngineError(f"STAR column _{key} has non-numeric values" + (f" in {path}" if path else ""))

    def rows(self):
        keys = list(self.columns)
        for i in range(len(self)):
            yield {k: self.columns[k][i] for k in keys}

    def take(self, indices):
        return StarTable({k: [v[i] for i in indices] for k, v in self.columns.items()}, self.name)


def _fmt(value):
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


# a bare value may not start like these (STAR's quotes, comments, tags and reserved words)
_RESERVED_STARTS = ("_", "#", "$", ";", "'", '"', "[", "]")
_RESERVED_WORDS = ("data_", "loop_", "save_", "global_", "stop_")


def _quote(value):
    """A value as one STAR token: bare where the grammar allows it, else between quotes,
    preferring the quote character the value holds less often."""
    bare = value and not any(c.isspace() or c in "'\"" for c in value)
    if bare and not value.startswith(_RESERVED_STARTS) and not value.lower().startswith(_RESERVED_WORDS):
        return value
    for q in sorted(('"', "'"), key=value.count):
        if not _closes(value, q):
            return q + value + q
    raise EngineError(f"the value {value!r} cannot be written to a STAR file (it holds both quote "
                      "characters before whitespace): rename the folder or file")


def _closes(value, q):
    """Whether ``q`` inside ``value`` would end a ``q``-quoted STAR value early."""
    return any(c == q and (k + 1 == len(value) or value[k + 1].isspace())
               for k, c in enumerate(value))


def _tokens(row):
    """The values of a loop row per the STAR grammar: a value that starts with a quote ends
    at that quote followed by whitespace; any other value at whitespace (so an apostrophe
    inside a bare value, as in ``it's.mrc``, is part of it)."""
    out, i, n = [], 0, len(row)
    while i < n:
        if row[i].isspace():
            i += 1
            continue
        q, j = row[i], i
        if q in "'\"":
            j = row.find(q, i + 1)
            while j >= 0 and j + 1 < n and not row[j + 1].isspace():
                j = row.find(q, j + 1)
            if j < 0:
                raise ValueError("unclosed quote")
            out.append(row[i + 1:j])
            i = j + 1
        else:
            while j < n and not row[j].isspace():
                j += 1
            out.append(row[i:j])
            i = j
    return out


def read_star(path, block=None):
    """Read the first loop table that is not RELION's optics/general block (or the one in
    ``data_<block>``) of a STAR file."""
    if not os.path.isfile(path):
        raise EngineError(f"STAR file not found: {path}")
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"cannot read STAR file {path}: {exc}")
    tables = _parse(lines, path)
    if not tables:
        raise EngineError(f"{path} has no loop_ table: is it a STAR file?")
    if block is None:
        # RELION files put data_optics (or data_general) first: the particles come after it
        data = [t for t in tables if t.name not in ("optics", "general")]
        return (data or tables)[0]
    for t in tables:
        if t.name == block:
            return t
    raise EngineError(f"{path} has no data_{block} loop; it has: " + ", ".join(t.name for t in tables))


def read_particles(path):
    """The particles table: the first loop with ``_rlnImageName`` (RELION 3.1+ files start
    with data_optics, RELION 4/5 tomography files with data_general)."""
    if not os.path.isfile(path):
        raise EngineError(f"STAR file not found: {path}")
    try:
        with open(path) as fh:
            tables = _parse(fh.read().splitlines(), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"cannot read STAR file {path}: {exc}")
    for t in tables:
        if "rlnImageName" in t:
            return t
    if not tables:
        raise EngineError(f"{path} has no loop_ table: is it a STAR file?")
    raise EngineError(f"STAR column _rlnImageName is missing in {path} (blocks: "
                      + ", ".join("data_" + t.name for t in tables) + "): give a particles STAR file")


def _parse(lines, path):
    tables, name, i = [], "", 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if line.startswith("data_"):
            name = line[5:]
        elif line == "loop_":
            keys = []
            while i < len(lines) and lines[i].strip().startswith("_"):
                keys.append(lines[i].strip().split()[0][1:])
                i += 1
            cols = {k: [] for k in keys}
            while i < len(lines):
                row = lines[i].strip()
                if row.startswith("data_") or row == "loop_":
                    break
                i += 1
                if not row or row.startswith("#"):
                    continue
                try:
                    values = _tokens(row) if '"' in row or "'" in row else row.split()
                except ValueError:
                    raise EngineError(f"malformed STAR row {i} in {path}: {row[:80]}")
                if len(values) != len(keys):
                    raise EngineError(f"malformed STAR file {path}: line {i} has {len(values)} values "
                                      f"but the loop declares {len(keys)} columns")
                for k, v in zip(keys, values):
                    cols[k].append(v)
            tables.append(StarTable(cols, name))
    return tables


def read_blocks(path):
    """Every ``data_`` block of a STAR file in order, as ``(name, text)``: the exact text
    from its ``data_`` line to the next one (comments before a block belong to it)."""
    with open(path) as fh:
        lines = fh.read().splitlines(keepends=True)
    blocks, start, name = [], None, None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("data_"):
            if start is not None:
                cut = _comment_start(lines, start, i)
                blocks.append((name, "".join(lines[start:cut])))
                start = cut
            else:
                start = _comment_start(lines, 0, i)
            name = stripped[5:].split()[0] if stripped[5:] else ""
    if start is not None:
        blocks.append((name, "".join(lines[start:])))
    return blocks


def _comment_start(lines, lo, i):
    """First line of the comment/blank lines just above line ``i`` (e.g. '# version 30001')."""
    j = i
    while j > lo and (not lines[j - 1].strip() or lines[j - 1].lstrip().startswith("#")):
        j -= 1
    return j


def write_star(path, table, comment=None, blocks=None):
    """Write ``table`` atomically as a ``data_<name>`` loop. ``blocks`` (from
    :func:`read_blocks`) are written around it as they were, the table taking the place
    of the block of its name."""
    others = [(n, t) for n, t in (blocks or [])]
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        if comment:
            for line in comment.splitlines():
                fh.write(f"# {line}\n")
        placed = False
        for name, text in others:
            if name == table.name and not placed:
                _write_loop(fh, table)
                placed = True
            else:
                fh.write("\n" + text.strip("\n") + "\n")
        if not placed:
            _write_loop(fh, table)


def _write_loop(fh, table):
    keys = list(table.columns)
    fh.write(f"\ndata_{table.name}\n\nloop_\n")
    for n, k in enumerate(keys, 1):
        fh.write(f"_{k} #{n}\n")
    for row in zip(*(table.columns[k] for k in keys)):
        fh.write(" ".join(_quote(v) for v in row) + "\n")
    fh.write("\n")
