"""MRC volumes with mrcfile + numpy (arrays are indexed [z, y, x]).

Image references follow RELION: ``path.mrc`` for a single volume, ``N@stack.mrcs``
for the N-th (1-based) volume of a stack. Relative paths are resolved against the
folder of the STAR file that names them.
"""
import os
import warnings

import mrcfile
import numpy as np

from ..errors import EngineError
from .atomic import atomic_path


def parse_image_name(name, base_dir="."):
    """Return ``(absolute_path, index)``; index is 0-based or None for a single volume."""
    index = None
    if "@" in name:
        head, name = name.split("@", 1)
        try:
            index = int(head) - 1
        except ValueError:
            raise EngineError(f"bad image reference '{head}@{name}': expected N@stack.mrcs")
        if index < 0:
            raise EngineError(f"bad image reference '{head}@{name}': N starts at 1")
    path = name if os.path.isabs(name) else os.path.normpath(os.path.join(base_dir, name))
    return path, index


def absolute_image_name(name, base_dir):
    """The same reference with an absolute path (``N@`` prefix kept), so a STAR file
    written to another folder still points at the right volume."""
    path, index = parse_image_name(name, base_dir)
    path = os.path.abspath(path)
    return path if index is None else f"{index + 1}@{path}"


def _open(path, mmap):
    if not os.path.isfile(path):
        raise EngineError(f"MRC file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mmap:
                return mrcfile.mmap(path, mode="r", permissive=True)
            return mrcfile.open(path, mode="r", permissive=True)
    except Exception as exc:  # mrcfile raises ValueError/OSError for broken headers
        raise EngineError(f"cannot read MRC file {path}: {exc}")


def check_real(data, path):
    """Refuse complex-valued data (MRC mode 3 or 4): turning it into float32 would drop the
    imaginary part without a word."""
    if np.iscomplexobj(data):
        raise EngineError(f"{path}: complex-valued MRC data ({data.dtype}); subtomograms and "
                          "tomograms must be real-valued: write the real-space volume (mode 2)")


def read_volume(path, index=None, mmap=False):
    """Read a volume as float32 [z, y, x]. With ``mmap`` the data stay on disk
    (returned as a read-only memory map when the file is float32)."""
    mrc = _open(path, mmap)
    data = mrc.data
    if data is None:
        raise EngineError(f"MRC file {path} has no data")
    check_real(data, path)
    if index is not None:
        if data.ndim == 3 and mrc.header.nz > 1 and not mrc.is_volume_stack():
            # a plain 3D file read as a stack of 2D images is not a volume stack
            raise EngineError(f"{index + 1}@{path}: file is a single volume, not a stack")
        if data.ndim != 4:
            raise EngineError(f"{index + 1}@{path}: not a stack of volumes")
        if index >= data.shape[0]:
            raise EngineError(f"{index + 1}@{path}: stack has only {data.shape[0]} volumes")
        data = data[index]
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise EngineError(f"{path}: expected a 3D volume, found shape {data.shape}")
    if mmap and data.dtype == np.float32:
        return data
    return np.asarray(data, dtype=np.float32)


def read_image(name, base_dir="."):
    path, index = parse_image_name(name, base_dir)
    return read_volume(path, index)


def voxel_size(path):
    """Voxel size in Angstrom from the header (x spacing), or None if unset (0 or 1 with
    an empty cell, which is what many programs write when they do not know it)."""
    mrc = _open(path, mmap=True)
    try:
        vs = float(mrc.voxel_size.x)
    finally:
        mrc.close()
    return vs if vs > 0 else None


def volume_shape(path):
    """Shape [z, y, x] without reading the data."""
    mrc = _open(path, mmap=True)
    try:
        h = mrc.header
        return int(h.nz), int(h.ny), int(h.nx)
    finally:
        mrc.close()


def write_volume(path, data, voxel_size=None):
    """Write float32 data atomically, with the voxel size in the header."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            if voxel_size:
                mrc.voxel_size = float(voxel_size)
            if data.ndim == 4:  # set_data already marks 4-D data as a volume stack
                mrc.header.ispg = 401
            mrc.update_header_stats()
