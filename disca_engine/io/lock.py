"""One run per output folder: a POSIX record lock on ``OUTDIR/.disca-lock``.

The kernel (and an NFS server's lock manager) drops the lock when its process ends, by
exit, kill or crash, so a killed run never leaves the folder locked; the file then stays
behind, unlocked, and says who held it. A run that ends removes the file while it still
holds the lock; a run that locked a file just removed so (its inode no longer the path's)
lets it go and tries again, so two runs never hold two files of one name.

A run that makes the folder marks its lock file so (``NEW_FOLDER``) before it locks it: a
second run that wins the lock on that file knows the folder is new too, and removes it
when it fails and leaves it empty, though the run that made the folder was refused.
"""
import errno
import fcntl
import os
import socket
import time

from ..errors import EngineError

LOCK_NAME = ".disca-lock"
NEW_FOLDER = "a new folder, not locked yet"  # the lock file's text until a run holds it


class FolderLock:
    """``with FolderLock(outdir, "cluster") as lock:`` holds the folder for the block.
    ``lock.created`` says whether the folder was made for this run; if the block fails
    and leaves it empty, it goes again."""

    def __init__(self, folder, command):
        self.folder = os.path.abspath(os.fspath(folder))
        self.command = command
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.created = False
        self._fd = None

    def __enter__(self):
        self.created = not os.path.exists(self.folder)
        for _ in range(5):
            self._fd = self._open()
            self._lock()
            if self._still_the_path():
                break
            os.close(self._fd)  # locked a file that its holder removed on leaving
        else:
            self._forget_folder()
            raise EngineError(f"--output {self.folder}: its lock file keeps changing: another run "
                              "is starting there; wait for it, or choose another --output")
        # read through the locked descriptor: closing any other one on the file drops the lock
        made_by_a_refused_run = os.pread(self._fd, len(NEW_FOLDER) + 1, 0) == NEW_FOLDER.encode()
        self.created = self.created or made_by_a_refused_run
        os.ftruncate(self._fd, 0)
        os.write(self._fd, (f"disca-engine {self.command}, pid {os.getpid()} on {socket.gethostname()}, "
                            f"since {time.strftime('%Y-%m-%d %H:%M:%S')}\n").encode())
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            os.remove(self.path)  # while still locked: see the module's docstring
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        if exc_type is not None:
            self._forget_folder()
        return False

    def _open(self):
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if self.created and os.fstat(fd).st_size == 0:
                os.write(fd, NEW_FOLDER.encode())
            return fd
        except OSError as exc:
            self._forget_folder()
            raise EngineError(f"--output {self.folder}: cannot create {LOCK_NAME} there "
                              f"({exc.strerror}): choose a writable location")

    def _lock(self):
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            self._forget_folder()  # made by this run and already left by the holder
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise EngineError(f"--output {self.folder}: cannot lock it ({exc.strerror}); on a "
                                  "network file system without locking, choose a local folder")
            raise EngineError(f"--output {self.folder} is in use by another run ({holder}): wait "
                              "for it to end, or choose another --output")

    def _still_the_path(self):
        try:
            here, there = os.fstat(self._fd), os.stat(self.path)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def _holder(self):
        try:
            with open(self.path) as fh:
                return fh.read().strip() or "its details are not written yet"
        except OSError:
            return "unknown"

    def _forget_folder(self):
        """Remove a folder this run made when it is empty again."""
        if self.created:
            try:
                os.rmdir(self.folder)
            except OSError:
                pass
