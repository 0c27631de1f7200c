"""Particles from a particles STAR file to one (N, s, s, s) float32 stack.

Every subtomogram is validated (readable, cubic, one size, large enough, finite, not
constant) and normalised to zero mean and unit variance, the intensity scale DISCA
relies on (noise fill of rotated corners is N(0, 1)). Without a cache folder the stack
lives in RAM; with one it is written once, streaming, to ``cache_dir/stack.f32`` and
memory-mapped, so data larger than RAM work and a second load (``--resume``) skips the
MRC files when the sidecar ``stack.json`` still matches the STAR file.
"""
import json
import os
import warnings

import mrcfile
import numpy as np

from .. import contract
from ..errors import EngineError, naming
from ..io import mrc as mrc_io
from ..io.atomic import atomic_path
from ..io.images import ImageResolver
from ..io.star import read_particles
from ..progress import Progress

CACHE_STACK = "stack.f32"
CACHE_META = "stack.json"
CACHE_VERSION = 2  # 2: the images' sizes and times are part of the key
_PROGRESS_MIN = 500  # report progress lines for sets at least this large
_RAM_HINT_GIB = 4.0  # suggest the memory-mapped cache above this size


class ParticleSet:
    """Validated, normalised subtomograms and the STAR table they came from."""

    def __init__(self, table, star_path, volumes, voxel_size=None, cache_path=None):
        self.table = table
        self.star_path = star_path
        self.volumes = volumes
        self.voxel_size = voxel_size
        self.cache_path = cache_path

    @property
    def n(self):
        return int(self.volumes.shape[0])

    @property
    def box(self):
        return int(self.volumes.shape[1])

    def __len__(self):
        return self.n

    def iter_batches(self, indices=None, batch_size=64):
        """Yield float32 copies (B, s, s, s) of the volumes at ``indices`` (all, in order,
        when None), ``batch_size`` at a time. Reads from a memory map are done in sorted
        order (sequential disk access) and returned in the requested order."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        indices = np.arange(self.n) if indices is None else np.asarray(indices, dtype=np.int64)
        for a in range(0, len(indices), batch_size):
            idx = indices[a:a + batch_size]
            order = np.argsort(idx, kind="stable")
            batch = np.empty((len(idx),) + self.volumes.shape[1:], dtype=np.float32)
            batch[order] = self.volumes[idx[order]]
            yield batch


class Subset:
    """The subtomograms ``indices`` of a particle set or view (``align.mask``): its own
    ``n`` and ``iter_batches`` over them; box, mask, voxel size and the rest are the
    parent's."""

    def __init__(self, parent, indices):
        self.parent, self.indices = parent, np.asarray(indices, np.int64)
        self.n = len(self.indices)

    def __getattr__(self, name):
        if name == "parent":
            raise AttributeError(name)
        return getattr(self.parent, name)

    def __len__(self):
        return self.n

    def iter_batches(self, indices=None, batch_size=64):
        idx = self.indices if indices is None else self.indices[np.asarray(indices, np.int64)]
        return self.parent.iter_batches(idx, batch_size)


def _read_table(star_path):
    return read_particles(star_path)


class _Reader:
    """Reads the volume of one image reference, keeping the last stack file open."""

    def __init__(self, resolver):
        self.resolver = resolver
        self._stack_path = None
        self._stack = None

    def close(self):
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def read(self, row, name):
        try:
            path, index = self.resolver.resolve(name)
        except EngineError as exc:
            raise EngineError(f"particle row {row + 1}: {exc}")
        where = f"row {row + 1} ({name} -> {path})"
        try:
            if index is None:
                return path, mrc_io.read_volume(path)
            return path, self._from_stack(path, index)
        except EngineError as exc:
            raise EngineError(f"particle {where}: {exc}")
        except Exception as exc:  # noqa: BLE001 - any reader failure is a damaged file
            raise EngineError(f"particle {where}: cannot read MRC data ({exc}); re-extract it")

    def _from_stack(self, path, index):
        if path != self._stack_path:
            self.close()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    self._stack = mrcfile.mmap(path, mode="r", permissive=True)
                except Exception as exc:  # noqa: BLE001
                    raise EngineError(f"cannot open MRC stack ({exc})")
            self._stack_path = path
        data = self._stack.data
        if data is None:
            raise EngineError("MRC file has no data")
        mrc_io.check_real(data, path)
        if data.ndim == 3 and index == 0 and not self._stack.is_volume_stack():
            return np.asarray(data, dtype=np.float32)  # 1@single.mrc is the volume itself
        if data.ndim != 4:
            raise EngineError(f"{index + 1}@ refers to a stack of volumes but the file holds shape {data.shape}")
        if index >= data.shape[0]:
            raise EngineError(f"stack has only {data.shape[0]} volumes")
        return np.array(data[index], dtype=np.float32)


def _check_and_normalise(vol, row, name, path, box, min_box):
    where = f"row {row + 1} ({name})"
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise EngineError(f"particle {where}: box {'x'.join(map(str, vol.shape[::-1]))} is not cubic; "
                          "DISCA needs cubic subtomograms: re-extract with a cubic --box")
    if min_box and vol.shape[0] < min_box:
        raise EngineError(f"particle {where}: box {vol.shape[0]} is too small; boxes under {min_box} voxels "
                          f"cannot pass the network's valid 3x3x3 convolutions: re-extract with a larger --box")
    if box is not None and vol.shape[0] != box:
        return None  # caller reports mixed sizes with the full picture
    if not np.all(np.isfinite(vol)):
        bad = int(vol.size - np.count_nonzero(np.isfinite(vol)))
        raise EngineError(f"particle {where}: {path} has {bad} NaN/Inf voxels: re-extract it from a "
                          "tomogram without NaNs or remove the row")
    # float32 arithmetic with float64 accumulators: no float64 copy of the volume
    mean = vol.mean(dtype=np.float64)
    centred = np.subtract(vol, np.float32(mean), dtype=np.float32)
    std = np.sqrt(np.square(centred).sum(dtype=np.float64) / centred.size)
    if not std > 1e-6 * max(1.0, abs(mean)):
        raise EngineError(f"particle {where}: {path} is constant (zero variance): an empty or masked-out "
                          "subtomogram; remove the row")
    centred *= np.float32(1.0 / std)
    return centred


def _mixed_sizes_error(names, resolver, first_row, box, bad_row, bad_size):
    """Count the box sizes of all rows (headers only) for a complete error message."""
    sizes = {}
    for name in names:
        try:
            nz = mrc_io.volume_shape(resolver.resolve(name)[0])[-1]
        except EngineError:
            continue
        sizes[nz] = sizes.get(nz, 0) + 1
    listing = ", ".join(f"{s}^3 x{c}" for s, c in sorted(sizes.items()))
    return EngineError(f"mixed box sizes ({listing}): row {first_row + 1} is {box}^3 but row {bad_row + 1} "
                       f"({names[bad_row]}) is {bad_size}^3; re-extract all subtomograms with one --box")


def _source_signature(star_path, names):
    """What the cached stack was made from: the STAR file and every image file it names
    (size and modification time), so boxes changed behind an unchanged STAR are reloaded.
    None when an image cannot be found (the loading then says which)."""
    import hashlib
    st = os.stat(star_path)
    resolver, seen, digest = ImageResolver(star_path), set(), hashlib.sha256()
    try:
        for name in names:
            path = resolver.resolve(name)[0]
            if path not in seen:
                seen.add(path)
                f = os.stat(path)
                digest.update(f"{path}\0{f.st_size}\0{f.st_mtime_ns}\n".encode())
    except (EngineError, OSError):
        return None
    return {"star_path": os.path.abspath(star_path), "star_mtime_ns": st.st_mtime_ns,
            "star_size": st.st_size, "images": digest.hexdigest()}


def _load_cache(cache_dir, star_path, names):
    meta_path = os.path.join(cache_dir, CACHE_META)
    stack_path = os.path.join(cache_dir, CACHE_STACK)
    try:
        with open(meta_path) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    source = _source_signature(star_path, names)
    if source is None:
        return None
    n = len(names)
    expect = dict(source, version=CACHE_VERSION, n=n)
    if any(meta.get(k) != v for k, v in expect.items()):
        return None
    box = int(meta.get("box", 0))
    if box < 1 or not os.path.isfile(stack_path) or os.path.getsize(stack_path) != n * box ** 3 * 4:
        return None
    vols = np.memmap(stack_path, dtype=np.float32, mode="r", shape=(n, box, box, box))
    return vols, meta.get("voxel_size"), stack_path


def peek_particles(star_path):
    """(table, resolved image paths, first volume's x size) without reading voxels: what the
    checks made before any loading need (N, box, the files of the fingerprint)."""
    table = _read_table(star_path)
    names = table.column(contract.IMAGE, path=star_path)
    if not names:
        raise EngineError(f"{star_path} has no particles (empty table): extract subtomograms first")
    resolver = ImageResolver(star_path)
    paths = []
    for row, name in enumerate(names):
        try:
            paths.append(resolver.resolve(name)[0])
        except EngineError as exc:
            raise EngineError(f"particle row {row + 1}: {exc}")
    return table, paths, mrc_io.volume_shape(paths[0])[-1]  # x: also right for volume stacks


def load_particles(star_path, cache_dir=None, min_box=None, min_particles=1, progress=True):
    """Read, validate and normalise all particles of ``star_path``.

    ``cache_dir``: write the normalised stack there once (memory-mapped, constant memory)
    and reuse it while ``stack.json`` matches the STAR file (path, size, mtime, N).
    ``min_box``: smallest accepted box (the loop passes its network's). Problems raise
    one-line EngineErrors naming the row and file.
    """
    table = _read_table(star_path)
    names = table.column(contract.IMAGE, path=star_path)
    n = len(names)
    if n < max(1, int(min_particles)):
        raise EngineError(f"{star_path} has {n} particles but at least {min_particles} are needed: "
                          "pick/extract more subtomograms or lower the K range")
    if cache_dir:
        cached = _load_cache(cache_dir, star_path, names)
        if cached is not None:
            vols, vs, stack_path = cached
            if min_box and vols.shape[1] < min_box:
                raise EngineError(f"box {vols.shape[1]} is too small; boxes under {min_box} voxels cannot "
                                  "pass the network's valid 3x3x3 convolutions: re-extract with a larger --box")
            if progress:
                print(f"[load] reusing normalised stack {stack_path} ({n} x {vols.shape[1]}^3)", flush=True)
            return ParticleSet(table, star_path, vols, vs, stack_path)
    resolver = ImageResolver(star_path)
    reader = _Reader(resolver)
    prog = Progress("load", total=n) if progress and n >= _PROGRESS_MIN else None
    try:
        first_path, first = reader.read(0, names[0])
        first = _check_and_normalise(first, 0, names[0], first_path, None, min_box)
        box = first.shape[0]
        voxel_size = mrc_io.voxel_size(first_path)
        gib = n * box ** 3 * 4 / 2 ** 30
        if not cache_dir and gib > _RAM_HINT_GIB and progress:
            print(f"[load] note: {n} subtomograms of {box}^3 need {gib:.1f} GiB of RAM; give a cache "
                  "folder to keep them memory-mapped on disk instead", flush=True)
        sink = _Sink(cache_dir, n, box)
        try:
            sink.put(0, first)
            for i in range(1, n):
                path, vol = reader.read(i, names[i])
                norm = _check_and_normalise(vol, i, names[i], path, box, min_box)
                if norm is None:
                    raise _mixed_sizes_error(names, resolver, 0, box, i, vol.shape[0])
                sink.put(i, norm)
                if prog:
                    prog.update(i + 1)
            vols, stack_path = sink.finish(dict(_source_signature(star_path, names) or {}, version=CACHE_VERSION,
                                                n=n, box=box, voxel_size=voxel_size))
        except BaseException:
            sink.abort()
            raise
    finally:
        reader.close()
    if prog:
        prog.finish(f"{n} subtomograms of {box}^3" + (f" cached in {stack_path}" if stack_path else ""))
    return ParticleSet(table, star_path, vols, voxel_size, stack_path)


class _Sink:
    """Destination of normalised volumes: a RAM array, or a raw float32 file written
    sequentially (then memory-mapped read-only) with its sidecar written last."""

    def __init__(self, cache_dir, n, box):
        self.n, self.box, self.cache_dir = n, box, cache_dir
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
            self.stack_path = os.path.join(cache_dir, CACHE_STACK)
            meta_path = os.path.join(cache_dir, CACHE_META)
            if os.path.exists(meta_path):
                os.remove(meta_path)  # invalidate before overwriting the stack
            self.tmp_path = self.stack_path + ".partial"
            self.fh = open(self.tmp_path, "wb")
            self.array = None
        else:
            self.stack_path = None
            self.array = np.empty((n, box, box, box), dtype=np.float32)

    def put(self, i, vol):
        if self.array is not None:
            self.array[i] = vol
        else:
            with naming(self.tmp_path):  # a write to an open file names no path
                self.fh.write(np.ascontiguousarray(vol, dtype=np.float32).tobytes())

    def finish(self, meta):
        if self.array is not None:
            return self.array, None
        with naming(self.tmp_path):
            self.fh.close()  # flushes: a full disk may show only here
        os.replace(self.tmp_path, self.stack_path)
        with atomic_path(os.path.join(self.cache_dir, CACHE_META)) as tmp, open(tmp, "w") as fh:
            json.dump(meta, fh, indent=1)
        vols = np.memmap(self.stack_path, dtype=np.float32, mode="r",
                         shape=(self.n, self.box, self.box, self.box))
        return vols, self.stack_path

    def abort(self):
        """No partial stack stays, also when closing fails on the full disk that stopped it."""
        if self.array is None:
            try:
                self.fh.close()
            except OSError:
                pass
            if os.path.exists(self.tmp_path):
                os.remove(self.tmp_path)
