"""Output locations checked before any computing, and without creating anything: a run
that cannot write its result must fail in its first second, not after hours."""
import os
import shutil

from ..errors import EngineError

BLOCK = 4096  # every file takes whole blocks of its disk: space estimates round up to them


def _existing_ancestor(path):
    p = path
    while not os.path.lexists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _check_creatable(path, flag, what):
    base = _existing_ancestor(path)
    if not os.path.isdir(base):
        raise EngineError(f"{flag} {path}: {base} is a file, so no {what} can be made under it: "
                          "choose another location")
    if _read_only(base):  # root's os.access ignores permissions, not a read-only mount
        raise EngineError(f"{flag} {path}: {base} is on a read-only file system: choose a "
                          "writable location")
    if not os.access(base, os.W_OK | os.X_OK):
        raise EngineError(f"{flag} {path}: no permission to write in {base}: choose a writable location")


def _read_only(path):
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_output_folder(path, flag="--output"):
    """``path`` is, or can become, a writable folder. Creates nothing."""
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise EngineError(f"{flag} {path} is a file, not a folder: give a folder name")
    _check_creatable(path, flag, "folder")
    return path


def check_output_file(path, flag="--output", example="coords.star"):
    """``path`` names a file that can be (re)written. Creates nothing."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise EngineError(f"{flag} {path} is a folder: give a file name, e.g. "
                          f"{os.path.join(path, example)}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise EngineError(f"{flag} {path}: no permission to overwrite it: choose another file")
    _check_creatable(os.path.dirname(path), flag, "file")
    return path


def size_text(nbytes):
    """Bytes as the unit a user reads: '103 KiB', '1.4 GiB'."""
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}" if nbytes < 10 * scale else f"{nbytes / scale:.0f} {unit}"
    return f"{int(nbytes)} bytes"


def check_free_space(needs):
    """Refuse a run whose writes cannot fit, before it reads a voxel. ``needs``: (flag,
    path, bytes, what) for each location a run writes; the needs of locations on one disk
    are added up. Creates nothing."""
    disks = {}
    for flag, path, nbytes, what in needs:
        base = _existing_ancestor(os.path.abspath(os.fspath(path)))
        disks.setdefault(os.stat(base).st_dev, []).append((flag, path, nbytes, what, base))
    for items in disks.values():
        total = sum(item[2] for item in items)
        free = shutil.disk_usage(items[0][4]).free
        if total > free:
            flag, path = items[0][:2]
            parts = "; ".join(f"{what}: {size_text(nbytes)}" for _, _, nbytes, what, _ in items)
            raise EngineError(f"{flag} {path}: the run needs up to about {size_text(total)} of disk "
                              f"there (an upper estimate: {parts}) but only {size_text(free)} are "
                              "free: free space, or choose a location on a disk with room")


def _within(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_overwriting_inputs(written, inputs, folders=(), flag="--output"):
    """Refuse an output location whose writes would replace or delete an input.

    ``written``: the paths the command writes or removes (files or folders). ``inputs``:
    ``(what, file)``, refused when the file is or lies inside a written path. ``folders``:
    ``(what, folder)`` read as a whole (a model's run), refused also when a written path
    lies inside it. Folders are resolved once each, so 10^5 subtomograms cost no more than
    a few system calls."""
    written = [(w, os.path.realpath(os.fspath(w))) for w in written]
    real_dirs = {}

    def real(path):
        head, base = os.path.split(os.path.abspath(os.fspath(path)))
        if head not in real_dirs:
            real_dirs[head] = os.path.realpath(head)
        return os.path.join(real_dirs[head], base)

    for what, path, inside_too in ([(w, p, False) for w, p in inputs]
                                   + [(w, p, True) for w, p in folders]):
        if path is None:
            continue
        r = real(path)
        for shown, w in written:
            if _within(r, w) or (inside_too and _within(w, r)):
                how = "would replace" if _within(r, w) else "would write into"
                raise EngineError(f"{flag}: writing {shown} {how} the {what} {path}: choose an "
                                  "output outside the inputs")


def refuse_existing(folder, names, command, flag="--overwrite"):
    """A previous output of ``command`` in ``folder`` is kept unless the user says otherwise."""
    found = [n for n in names if os.path.lexists(os.path.join(folder, n))]
    if found:
        raise EngineError(f"{folder} already holds a '{command}' output ({', '.join(found)}): choose "
                          f"another --output, or add {flag} to replace it")


class fresh_folder:
    """Context manager: if ``path`` did not exist and the block fails before writing any
    file there, the (empty) folders it left are removed, so an early error leaves nothing."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.created = not os.path.exists(self.path)

    def __enter__(self):
        return self.path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.created and os.path.isdir(self.path):
            if not any(files for _, _, files in os.walk(self.path)):
                import shutil
                shutil.rmtree(self.path, ignore_errors=True)
        return False
