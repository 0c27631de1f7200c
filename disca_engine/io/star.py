"""Minimal STAR reader/writer for the loop tables the engine uses.

A table is a ``dict`` of column name (without the leading underscore, e.g.
``rlnImageName``) to a list of strings, plus the block name. Values stay strings;
callers convert what they need (see :func:`column`).
"""
import os
import shlex

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


def _quote(value):
    if value == "" or any(c.isspace() for c in value):
        return '"' + value.replace('"', "'") + '"'
    return value


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
                    values = shlex.split(row, posix=True) if '"' in row or "'" in row else row.split()
                except ValueError:
                    raise EngineError(f"malformed STAR row {i} in {path}: {row[:80]}")
                if len(values) != len(keys):
                    raise EngineError(f"malformed STAR file {path}: line {i} has {len(values)} values "
                                      f"but the loop declares {len(keys)} columns")
                for k, v in zip(keys, values):
                    cols[k].append(v)
            tables.append(StarTable(cols, name))
    return tables


def write_star(path, table, comment=None):
    """Write ``table`` atomically as one ``data_<name>`` loop."""
    keys = list(table.columns)
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        if comment:
            for line in comment.splitlines():
                fh.write(f"# {line}\n")
        fh.write(f"\ndata_{table.name}\n\nloop_\n")
        for n, k in enumerate(keys, 1):
            fh.write(f"_{k} #{n}\n")
        for row in zip(*(table.columns[k] for k in keys)):
            fh.write(" ".join(_quote(v) for v in row) + "\n")
        fh.write("\n")
