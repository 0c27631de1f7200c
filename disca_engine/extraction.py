"""Cut cubic subtomograms around picks, normalise them, write MRCs + particles.star.

Box convention: a box of B voxels has its centre at index B // 2 (for even B, the voxel
just after the geometric middle), and that voxel is the pick's voxel. With binning b the
box covers B*b input voxels starting at round(c - (B//2)*b - (b-1)/2), block-averaged, so
binned voxel B//2 is centred on the pick (within half an input voxel). Boxes are cut by
slicing (no interpolation) from a memory-mapped tomogram; boxes crossing the tomogram's
border are skipped and counted, or, with ``pad`` ("noise" or "mean"), completed with noise of
the box's own mean and standard deviation (or its mean) when the pick itself lies inside the
tomogram; such boxes carry the filled fraction in ``_discaPaddedFraction``. Each box is
normalised to zero mean and unit variance.
"""
import dataclasses
import errno
import os
import time
import warnings

import mrcfile
import numpy as np

from . import contract
from .errors import EngineError, disk_errors, naming
from .io.atomic import atomic_path
from .io.jsonfile import write_json
from .io.lock import FolderLock
from .io.manifest import remove, swap_in
from .io.outdir import (BLOCK, check_free_space, check_output_folder, refuse_existing,
                        refuse_overwriting_inputs)
from .io.mrc import write_volume
from .io.star import StarTable, write_star
from .picking.files import read_coords, tomo_name_for
from .picking.volume import FileSource, bin_array
from .progress import Progress


def box_starts(xyz, box, bin=1):
    """First input voxel (z, y, x) of each box; xyz is N x 3 (x, y, z) in input voxels."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    start = xyz[:, ::-1] - (box // 2) * bin - (bin - 1) / 2.0
    return np.floor(start + 0.5).astype(np.int64)


def _check_box(shape, box, bin):
    box, bin = int(box), int(bin)
    if box < 1 or bin < 1:
        raise EngineError(f"box and bin must be positive integers (box {box}, bin {bin})")
    if box * bin > min(shape):
        raise EngineError(f"box of {box} voxels x bin {bin} = {box * bin} input voxels is larger than "
                          f"the tomogram ({shape[2]} x {shape[1]} x {shape[0]}): use a smaller --box or --bin")
    return box, bin


def normalise(box):
    """Zero mean, unit variance (a constant box becomes all zeros)."""
    out = np.array(box, dtype=np.float32)
    normalise_inplace(out[np.newaxis])
    return out


def normalise_inplace(boxes):
    """Normalise each box of a K x B x B x B float32 array in place (vectorised)."""
    flat = boxes.reshape(len(boxes), -1)
    flat -= flat.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
    sd = np.sqrt(np.einsum("ij,ij->i", flat, flat, dtype=np.float64) / flat.shape[1])
    flat *= np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 0.0).astype(np.float32)[:, None]


def _inside_starts(shape, xyz, box, bin):
    box, bin = _check_box(shape, box, bin)
    span = box * bin
    starts = box_starts(xyz, box, bin)
    inside = np.all((starts >= 0) & (starts + span <= np.array(shape)), axis=1)
    return starts, inside, span


def _cut(volume, start, span, bin):
    z, y, x = start
    cut = volume[z:z + span, y:y + span, x:x + span]
    return bin_array(cut, bin) if bin > 1 else cut


def iter_boxes(volume, xyz, box, bin=1, normalised=True):
    """Yield (row, box) for every box fully inside ``volume`` ([z, y, x] array or memmap)."""
    volume = np.asarray(volume)  # a memory map stays a view on disk; drops the subclass overhead
    starts, inside, span = _inside_starts(volume.shape, xyz, box, bin)
    for i in np.flatnonzero(inside):
        cut = np.array(_cut(volume, starts[i], span, bin), dtype=np.float32)
        yield i, normalise(cut) if normalised else cut


def extract_boxes(volume, xyz, box, bin=1, normalised=True):
    """All boxes in memory: (array K x B x B x B float32, kept mask of length N)."""
    volume = np.asarray(volume)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    starts, kept, span = _inside_starts(volume.shape, xyz, box, bin)
    rows = np.flatnonzero(kept)
    out = np.empty((len(rows), box, box, box), dtype=np.float32)
    # cut in z, y, x order of the boxes: neighbouring boxes share pages of a memory map
    for n in np.lexsort(starts[rows].T[::-1]):
        out[n] = _cut(volume, starts[rows[n]], span, bin)
    if not np.isfinite(out).all():
        raise EngineError("the tomogram has NaN/Inf voxels inside the boxes: fix or replace them first")
    if normalised:
        for a in range(0, len(out), 4096):
            normalise_inplace(out[a:a + 4096])
    return out, kept


PAD_MODES = ("noise", "mean")


def _check_pad(pad):
    if pad not in (None, "skip") + PAD_MODES:
        raise EngineError(f"pad must be 'skip', 'noise' or 'mean', got {pad!r}")
    return None if pad in (None, "skip") else pad


def paddable_rows(shape, xyz, box, bin):
    """Rows whose box crosses the border but whose pick lies inside the tomogram."""
    starts, inside, span = _inside_starts(shape, xyz, box, bin)
    zyx = np.floor(np.asarray(xyz, dtype=np.float64).reshape(-1, 3)[:, ::-1] + 0.5)
    centre_in = np.all((zyx >= 0) & (zyx < np.array(shape)), axis=1)
    return np.flatnonzero(~inside & centre_in), starts, span


def cut_padded(volume, start, span, bin, fill, rng):
    """A box crossing the border: the part inside, the rest filled (``fill`` "noise": normal
    noise of the inside part's mean and sd; "mean": its mean). Returns (box, filled fraction)."""
    shape = np.array(volume.shape)
    start = np.asarray(start)
    lo, hi = np.maximum(start, 0), np.minimum(start + span, shape)
    inner = np.asarray(volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=np.float32)
    mean, sd = float(inner.mean()), float(inner.std())
    if fill == "noise":
        out = rng.normal(mean, sd, (span,) * 3).astype(np.float32)
    else:
        out = np.full((span,) * 3, mean, dtype=np.float32)
    o = lo - start
    out[o[0]:o[0] + inner.shape[0], o[1]:o[1] + inner.shape[1], o[2]:o[2] + inner.shape[2]] = inner
    filled = 1.0 - inner.size / float(span ** 3)
    return (bin_array(out, bin) if bin > 1 else out), filled


def _write_padded(data, xyz, rows, box, bin, name, output_dir, out_vs, fill, seed=0):
    """Padded boxes as single MRCs; returns [(index, image name, filled fraction)]."""
    padded, starts, span = paddable_rows(data.shape, xyz, box, bin)
    out = []
    for i in padded:
        rng = np.random.default_rng([seed, int(rows[i])])  # same box, same noise on re-runs
        cut, filled = cut_padded(data, starts[i], span, bin, fill, rng)
        rel = os.path.join("subtomos", f"{name}_{int(rows[i]):06d}.mrc")
        write_volume(os.path.join(output_dir, rel), normalise(cut), out_vs)
        out.append((int(i), rel, filled))
    return out


@dataclasses.dataclass
class ExtractionSummary:
    n_extracted: int
    n_skipped: int
    particles_star: str
    output_dir: str
    tomo_name: str
    box: int
    bin: int
    voxel_A: object
    seconds: float
    n_padded: int = 0
    pad: str = "skip"

    def as_dict(self):
        return dataclasses.asdict(self)


def _open_tomogram(path):
    if not os.path.isfile(path):
        raise EngineError(f"tomogram not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
    except Exception as exc:
        raise EngineError(f"cannot read MRC file {path}: {exc}")
    if mrc.data is None or mrc.data.ndim != 3:
        mrc.close()
        raise EngineError(f"{path}: not a 3D tomogram")
    if np.iscomplexobj(mrc.data):
        mrc.close()
        raise EngineError(f"{path}: complex MRC data; give a real-valued tomogram")
    return mrc


def _check_finite(path, planes=32):
    """Scan the tomogram for NaN/Inf with plain reads (pages of a memory map would count
    as resident memory for the whole scan)."""
    src = FileSource(path)
    if not np.issubdtype(src.dtype, np.floating):
        return
    for z0 in range(0, src.shape[0], planes):
        src.read(z0, min(src.shape[0], z0 + planes))  # raises EngineError naming the file


_STACK_BATCH = 1024


def _write_files(data, xyz, rows, box, bin, name, output_dir, out_vs, progress):
    """One MRC per box; returns [(coords index, image name relative to output_dir)]."""
    kept = []
    for i, cut in iter_boxes(data, xyz, box, bin):
        rel = os.path.join("subtomos", f"{name}_{int(rows[i]):06d}.mrc")
        write_volume(os.path.join(output_dir, rel), cut, out_vs)
        kept.append((i, rel))
        if progress is not None:
            progress.update(i + 1)
    return kept


def _write_stack(data, xyz, rows, box, bin, name, output_dir, out_vs, progress):
    """All boxes in one MRC volume stack, written through a memory map (atomically)."""
    _, inside, _ = _inside_starts(data.shape, xyz, box, bin)
    n = int(inside.sum())
    rel = os.path.join("subtomos", f"{name}.mrcs")
    if n == 0:
        return []
    rows_in = np.flatnonzero(inside)
    with atomic_path(os.path.join(output_dir, rel)) as tmp:
        with mrcfile.new_mmap(tmp, shape=(n, box, box, box), mrc_mode=2, overwrite=True) as out:
            _reserve(tmp)
            for a in range(0, n, _STACK_BATCH):  # vectorised cutting + normalisation
                sel = rows_in[a:a + _STACK_BATCH]
                out.data[a:a + len(sel)] = extract_boxes(data, xyz[sel], box, bin)[0]
                out.flush()  # hand written pages to the kernel: big stacks stay out of RAM
                if progress is not None:
                    progress.update(int(sel[-1]) + 1)
            if out_vs:
                out.voxel_size = float(out_vs)
            out.header.ispg = 401  # 4-D data: a stack of volumes
            out.update_header_stats()
    return [(int(i), f"{k + 1}@{rel}") for k, i in enumerate(rows_in)]


def _reserve(path):
    """Allocate the blocks of a file made full-size but sparse (a memory map's): a full disk
    is then an OSError here, not a SIGBUS when a page of the map is written."""
    with naming(path), open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            # a file system without fallocate: the space check before writing has to do


def remove_previous(output_dir):
    """The files of an earlier extraction in ``output_dir``: its particles.star first (the
    marker), then the boxes it names and its extraction.json. Nothing else is touched."""
    from .io.star import read_star
    star = os.path.join(output_dir, contract.PARTICLES_STAR)
    names = []
    if os.path.isfile(star):
        try:
            names = read_star(star)[contract.IMAGE]
        except (EngineError, KeyError):
            names = []
        os.remove(star)
    subtomos = os.path.realpath(os.path.join(output_dir, contract.SUBTOMOS_DIR))
    for name in set(n.split("@", 1)[-1] for n in names):
        path = os.path.realpath(os.path.join(output_dir, name))
        if os.path.dirname(path) == subtomos and os.path.isfile(path):
            os.remove(path)
    info = os.path.join(output_dir, contract.EXTRACTION_JSON)
    if os.path.exists(info):
        os.remove(info)


def _particles_table(kept, xyz, scores, rows, name, tomogram, pad):
    """particles.star of the boxes ``kept`` ((coordinate row, image name, padded fraction))."""
    idx = np.array([i for i, _, _ in kept], dtype=int)
    table = StarTable(name="particles")
    table[contract.IMAGE] = [rel for _, rel, _ in kept]
    table[contract.TOMO_NAME] = [name] * len(kept)
    table[contract.TOMO_FILE] = [tomogram] * len(kept)
    for k, axis in enumerate("XYZ"):
        table[f"rlnCoordinate{axis}"] = [f"{v:.2f}" for v in xyz[idx, k]]
    if scores is not None:
        table[contract.SCORE] = [f"{v:.6g}" for v in scores[idx]]
    table[contract.PICK_INDEX] = [str(int(rows[i])) for i in idx]
    if pad:
        table["discaPaddedFraction"] = [f"{f:.4f}" for _, _, f in kept]
    return table


def extract_file(tomogram, coords_star, box, output_dir, bin=1, tomo_name=None, voxel_A=None,
                 quiet=False, stack=False, pad=None, overwrite=False, allow_empty=False):
    """Extract boxes around the picks of ``coords_star`` from ``tomogram`` into ``output_dir``.

    Writes ``subtomos/<tomo>_<row>.mrc`` (or, with ``stack``, one volume stack
    ``subtomos/<tomo>.mrcs`` referenced as ``N@subtomos/<tomo>.mrcs``: much faster for many
    boxes), ``extraction.json`` and, last, ``particles.star``. Everything, the free disk space
    included, is checked before the folder is touched; an earlier extraction there is refused
    unless ``overwrite``. The new extraction is written under ``output_dir/.disca-new`` and
    swapped in when complete (:func:`_swap_in`), under the folder's lock: a failed run leaves
    the earlier extraction as it was and no box without its STAR file. No box inside the
    tomogram is an error unless ``allow_empty`` or padding. ``pad`` ("noise"/"mean"; default
    skip): complete boxes crossing the border instead of skipping them (see the module
    docstring). Returns an :class:`ExtractionSummary`.
    """
    t0 = time.time()
    pad = _check_pad(pad)
    tomogram = os.path.abspath(tomogram)
    output_dir = check_output_folder(output_dir)
    refuse_overwriting_inputs(
        [os.path.join(output_dir, n) for n in (contract.PARTICLES_STAR, contract.EXTRACTION_JSON,
                                               contract.SUBTOMOS_DIR, contract.STAGING_DIR)],
        [("tomogram", tomogram), ("coordinates", coords_star)])
    if not overwrite:
        refuse_existing(output_dir, (contract.PARTICLES_STAR, contract.EXTRACTION_JSON), "extract")
    xyz, scores, rows, coords_name = read_coords(coords_star, tomo_name)
    name = tomo_name or coords_name or tomo_name_for(tomogram)
    mrc = _open_tomogram(tomogram)
    try:
        data = mrc.data
        box, bin = _check_box(data.shape, box, bin)
        n_inside = int(_inside_starts(data.shape, xyz, box, bin)[1].sum())
        if n_inside == 0 and not (allow_empty or pad):
            raise EngineError(f"none of the {len(xyz)} coordinates of {coords_star} has a {box * bin}-voxel "
                              f"box inside {tomogram} ({data.shape[2]} x {data.shape[1]} x {data.shape[0]}): "
                              "are they this tomogram's, in its voxels (not Angstrom, not another binning)?")
        n_padded = len(paddable_rows(data.shape, xyz, box, bin)[0]) if pad else 0
        check_free_space([_space_needed(output_dir, n_inside, n_padded, box, stack)])
        vs = voxel_A if voxel_A is not None else (float(mrc.voxel_size.x) or None)
        job = _Job(tomogram, coords_star, name, box, bin, vs, vs * bin if vs else None, stack, pad, t0)
        _check_finite(tomogram)
        with FolderLock(output_dir, "extract"), disk_errors(output_dir):
            work = os.path.join(output_dir, contract.STAGING_DIR)
            remove(work)  # left by a killed earlier run
            try:
                kept, padded = _write_boxes(data, xyz, rows, job, work,
                                            None if quiet else Progress("extract", total=len(xyz)))
                summary = _write_tables(work, output_dir, kept, padded, xyz, scores, rows, job)
                _swap_in(output_dir, work)
            except BaseException:
                remove(work)
                raise
    finally:
        mrc.close()
    if not quiet:
        print(f"extracted {summary.n_extracted}, skipped {summary.n_skipped} (outside/crossing border)",
              flush=True)
    return summary


def _space_needed(output_dir, n_inside, n_padded, box, stack):
    """(flag, path, bytes, what) of the boxes (each file in whole blocks) and the tables."""
    one = box ** 3 * 4 + 1024  # float32 voxels + the MRC header
    whole = lambda nbytes: -(-nbytes // BLOCK) * BLOCK  # noqa: E731
    boxes = whole(n_inside * one) if stack else n_inside * whole(one)
    nbytes = boxes + n_padded * whole(one) + whole(300 * (n_inside + n_padded)) + 2 * BLOCK
    return ("--output", output_dir, nbytes,
            f"{n_inside + n_padded} boxes of {box}^3 x 4 bytes and {contract.PARTICLES_STAR}")


@dataclasses.dataclass(frozen=True)
class _Job:
    """What one extraction cuts and how: the tomogram, its coordinates' file, the name of
    the boxes, box and bin, input and output voxel sizes, stack and pad, start time."""
    tomogram: str
    coords_star: str
    name: str
    box: int
    bin: int
    voxel_A: object
    out_voxel_A: object
    stack: bool
    pad: object
    t0: float


def _write_boxes(data, xyz, rows, job, work, progress):
    """The boxes under ``work``: [(coords index, image name, padded fraction)] of the complete
    ones and of the padded ones."""
    os.makedirs(os.path.join(work, contract.SUBTOMOS_DIR), exist_ok=True)
    write = _write_stack if job.stack else _write_files
    kept = [(i, rel, 0.0) for i, rel in write(data, xyz, rows, job.box, job.bin, job.name, work,
                                              job.out_voxel_A, progress)]
    padded = (_write_padded(data, xyz, rows, job.box, job.bin, job.name, work, job.out_voxel_A, job.pad)
              if job.pad else [])
    return kept, padded


def _write_tables(work, output_dir, kept, padded, xyz, scores, rows, job):
    """extraction.json, then particles.star (the marker) under ``work``; the summary names
    the paths they will have in ``output_dir``."""
    kept = sorted(kept + padded)  # coords order
    table = _particles_table(kept, xyz, scores, rows, job.name, job.tomogram, job.pad)
    n_skip = len(xyz) - len(kept)
    summary = ExtractionSummary(n_extracted=len(kept), n_skipped=n_skip,
                                particles_star=os.path.join(output_dir, contract.PARTICLES_STAR),
                                output_dir=output_dir, tomo_name=job.name, box=job.box, bin=job.bin,
                                voxel_A=job.out_voxel_A, seconds=round(time.time() - job.t0, 3),
                                n_padded=len(padded), pad=job.pad or "skip")
    info = dict(summary.as_dict(), tomogram=job.tomogram, coords_star=os.path.abspath(job.coords_star),
                input_voxel_A=job.voxel_A, n_coordinates=len(xyz), box_centre_index=job.box // 2,
                stack=bool(job.stack), normalisation="per box: zero mean, unit variance")
    write_json(os.path.join(work, contract.EXTRACTION_JSON), info)
    write_star(os.path.join(work, contract.PARTICLES_STAR), table,
               comment=f"disca-engine extract: {len(kept)} boxes of {job.box}^3 (bin {job.bin}) from "
                       f"{job.tomogram}; {len(padded)} padded ({job.pad or 'skip'}); {n_skip} skipped "
                       "(outside/crossing border)")
    return summary


def _swap_in(output_dir, work):
    """The extraction staged in ``work`` replaces the earlier one: the old particles.star goes
    first (then the boxes it names), the new one comes last; boxes move into subtomos/ one by
    one, so that files of the user's there stay."""
    remove_previous(output_dir)
    staged = os.path.join(work, contract.SUBTOMOS_DIR)
    boxes = os.path.join(output_dir, contract.SUBTOMOS_DIR)
    os.makedirs(boxes, exist_ok=True)
    for name in os.listdir(staged):
        os.replace(os.path.join(staged, name), os.path.join(boxes, name))
    os.rmdir(staged)
    swap_in(output_dir, work, (), marker=contract.PARTICLES_STAR)
