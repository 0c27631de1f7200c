"""Write files under a temporary name and rename, so a crash never leaves a partial
file that looks complete."""
import contextlib
import os
import tempfile

from ..errors import naming


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once at import: os.umask is process-wide, not thread-safe to probe


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the same folder; rename it to ``path`` on success."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp" + os.path.splitext(base)[1], dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get normal permissions
    try:
        with naming(path):  # a write to the open file names no path: it names this one
            yield tmp
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
