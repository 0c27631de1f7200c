"""Where the files named by ``_rlnImageName`` are.

RELION writes names relative to its project folder (``Extract/job010/Subtomograms/...``)
while the STAR file sits in a job folder; other programs write them relative to the STAR
file. A relative name is tried against the STAR's folder, the current folder, then each
folder above the STAR's folder (the project root is one of them). The folder that worked
for one name is tried first for the next, so a whole file costs one lookup per name.
"""
import os

from ..errors import EngineError
from .mrc import parse_image_name


class ImageResolver:
    def __init__(self, star_path):
        self.star_dir = os.path.dirname(os.path.abspath(star_path))
        self._bases = self._candidate_bases()
        self._last = None

    def _candidate_bases(self):
        bases = [self.star_dir, os.getcwd()]
        parent = os.path.dirname(self.star_dir)
        while parent and parent not in bases:
            bases.append(parent)
            up = os.path.dirname(parent)
            if up == parent:
                break
            parent = up
        return bases

    def resolve(self, name):
        """``(absolute path, 0-based index or None)``; raises EngineError naming what was tried."""
        path, index = parse_image_name(name, self.star_dir)
        rel = name.split("@", 1)[1] if "@" in name else name
        if os.path.isabs(rel):
            if not os.path.isfile(path):
                raise EngineError(f"image {name} not found: fix _rlnImageName or the file location")
            return path, index
        bases = ([self._last] if self._last else []) + [b for b in self._bases if b != self._last]
        for base in bases:
            candidate = os.path.normpath(os.path.join(base, rel))
            if os.path.isfile(candidate):
                self._last = base
                return candidate, index
        tried = ", ".join(os.path.normpath(os.path.join(b, rel)) for b in self._bases[:4])
        more = f" and {len(self._bases) - 4} folders further up" if len(self._bases) > 4 else ""
        raise EngineError(f"image {name} not found; tried {tried}{more}: fix _rlnImageName or run from "
                          "the folder the names are relative to (e.g. the RELION project folder)")

    def absolute_name(self, name):
        """The reference with an absolute path (``N@`` kept), valid from any folder."""
        path, index = self.resolve(name)
        return path if index is None else f"{index + 1}@{path}"
