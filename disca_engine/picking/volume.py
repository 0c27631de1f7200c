"""Read tomograms slab by slab (z-planes), optionally binned, as float32.

Picking works on z-slabs so that memory stays bounded on large tomograms. A *source*
has ``shape`` ([z, y, x]) and ``read(z0, z1)`` returning planes ``z0..z1-1`` as a new
float32 array. ``FileSource`` reads with plain file reads (not a memory map), so the
tomogram's pages never count in the process's resident memory; ``ArraySource`` wraps
an in-memory array or memory map; ``BinnedSource`` block-averages another source.
"""
import os
import warnings

import mrcfile
import numpy as np

from ..errors import EngineError


class ArraySource:
    def __init__(self, volume, name="volume"):
        volume = np.asarray(volume) if not isinstance(volume, np.memmap) else volume
        if volume.ndim != 3:
            raise EngineError(f"{name}: expected a 3D volume [z, y, x], got shape {volume.shape}")
        if np.iscomplexobj(volume):
            raise EngineError(f"{name}: complex data cannot be picked; give a real-valued tomogram")
        self.volume = volume
        self.shape = tuple(int(n) for n in volume.shape)
        self.name = name

    def read(self, z0, z1):
        slab = np.array(self.volume[z0:z1], dtype=np.float32)
        check_slab(slab, self.name, z0)
        return slab


class FileSource:
    """Slabs of an MRC file read straight from disk (any real MRC mode)."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise EngineError(f"tomogram not found: {path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                    data = mrc.data
                    if data is None or data.ndim not in (2, 3):
                        raise EngineError(f"{path}: not a 3D volume (shape "
                                          f"{None if data is None else data.shape})")
                    self.dtype = data.dtype
                    self.offset = int(data.offset)
                    shape = data.shape if data.ndim == 3 else (1,) + data.shape
                    vs = float(mrc.voxel_size.x)
                    self.voxel_sizes = tuple(float(mrc.voxel_size[a]) for a in "xyz")
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"cannot read MRC file {path}: {exc}")
        if np.issubdtype(self.dtype, np.complexfloating):
            raise EngineError(f"{path}: complex MRC data cannot be picked; give a real-valued tomogram")
        self.shape = tuple(int(n) for n in shape)
        self.voxel_size = vs if vs > 0 else None
        self.name = path

    def read(self, z0, z1):
        plane = self.shape[1] * self.shape[2]
        count = (z1 - z0) * plane
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + z0 * plane * self.dtype.itemsize)
            raw = np.fromfile(fh, dtype=self.dtype, count=count)
        if raw.size != count:
            raise EngineError(f"{self.path} is truncated: expected {self.shape} voxels")
        slab = raw.reshape(z1 - z0, self.shape[1], self.shape[2]).astype(np.float32, copy=False)
        check_slab(slab, self.path, z0)
        return slab


class BinnedSource:
    """Block-average of ``source`` by ``factor`` along every axis. Trailing voxels that do
    not fill a block are dropped; binned voxel j covers input voxels j*b .. j*b+b-1."""

    def __init__(self, source, factor):
        self.source = source
        self.factor = b = int(factor)
        self.shape = tuple(n // b for n in source.shape)
        if min(self.shape) < 1:
            raise EngineError(f"binning by {b} leaves nothing of a {source.shape} volume; use a smaller --bin")
        self.name = source.name

    def read(self, z0, z1):
        b = self.factor
        nz, ny, nx = self.shape
        out = np.empty((z1 - z0, ny, nx), dtype=np.float32)
        for j in range(z0, z1):  # b input planes at a time: memory stays at a few planes
            out[j - z0] = bin_array(self.source.read(j * b, (j + 1) * b)[:, :ny * b, :nx * b], b)[0]
        return out


def bin_array(block, b):
    """Mean of b x b x b blocks of a [z, y, x] array whose sides are multiples of b."""
    if b == 1:
        return np.asarray(block, dtype=np.float32)
    nz, ny, nx = (n // b for n in block.shape)
    view = block.reshape(nz, b, ny, b, nx, b)
    return view.mean(axis=(1, 3, 5), dtype=np.float32)


def check_slab(slab, name, z0):
    if not np.isfinite(slab).all():
        bad = np.argwhere(~np.isfinite(slab))[0]
        raise EngineError(f"tomogram {name} has NaN/Inf voxels (first at z={bad[0] + z0}, "
                          f"y={bad[1]}, x={bad[2]}): fix or replace them (e.g. with the mean) first")


def make_source(volume, bin=1, name="volume"):
    """Source for an array, a memory map, a path or an existing source, binned by ``bin``."""
    if isinstance(volume, (str, os.PathLike)):
        src = FileSource(os.fspath(volume))
    elif hasattr(volume, "read") and hasattr(volume, "shape"):
        src = volume
    else:
        src = ArraySource(volume, name)
    bin = int(bin)
    if bin < 1:
        raise EngineError(f"bin must be a positive integer, got {bin}")
    return BinnedSource(src, bin) if bin > 1 else src
