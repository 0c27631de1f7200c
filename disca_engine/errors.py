"""Errors the engine reports to users as one clear line (no traceback)."""
import contextlib
import errno


class EngineError(Exception):
    """A problem with the user's input or settings; the message names it and the fix."""


_FIXES = {
    errno.ENOSPC: "the disk is full: free space there, or choose an --output (or --cache-dir) on "
                  "a disk with room",
    errno.EDQUOT: "the disk quota is used up: free space there, or choose an --output (or "
                  "--cache-dir) on a disk with room",
    errno.EROFS: "it is on a read-only file system: choose a writable --output (or --cache-dir)",
    errno.EACCES: "no permission to write there: choose a writable --output (or --cache-dir)",
    errno.EPERM: "no permission to write there: choose a writable --output (or --cache-dir)",
}


def os_error_line(exc, path=None):
    """An OSError as one line naming the path and the fix."""
    where = exc.filename or path or "a file"
    what = exc.strerror or exc.__class__.__name__
    fix = _FIXES.get(exc.errno, "check that location, or choose another --output (or --cache-dir)")
    return f"{where}: {what}: {fix}"


@contextlib.contextmanager
def naming(path):
    """An OSError of the block that names no path (a write to an open file, a flush) names
    ``path``, for the line :func:`disk_errors` makes of it."""
    try:
        yield
    except OSError as exc:
        if not exc.filename:
            exc.filename = path
        raise


@contextlib.contextmanager
def disk_errors(path=None):
    """Turn an OSError of the block (a full disk, a read-only mount) into an EngineError:
    one line naming the path (``path`` when the error names none) and the fix. The caller's
    own clean-up runs first, as for any failure; library callers (the plugin runs
    ``extract_file`` in its own process) catch EngineError only."""
    try:
        yield
    except OSError as exc:
        raise EngineError(os_error_line(exc, path)) from exc
