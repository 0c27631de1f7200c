"""Fixtures for the tests of full and read-only disks: real small file systems, and a
command line that skips the free-space check (as when another job fills the disk after a
run has started)."""
import os
import subprocess
import sys
import types

import pytest


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size, read_only=False)``: a folder with a tmpfs of ``size`` (mount's
    syntax: '64k', '2m') mounted on it for the test; skips where mounting is not allowed."""
    mounted = []

    def mount(size, read_only=False):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"a full or read-only disk needs a small tmpfs, and mounting one is not "
                        f"permitted here ({r.stderr.strip() or r.returncode})")
        mounted.append(folder)
        if read_only:
            make_read_only(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def resize(folder, size):
    """Give a ``small_disk`` another size (as when the user frees space on it)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True)


def make_read_only(folder):
    """Remount a ``small_disk`` read-only (root ignores permissions, not a read-only mount)."""
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)


_PAST_THE_CHECK = """
import sys
import disca_engine.extraction, disca_engine.io.outdir
skip = lambda needs: None
disca_engine.io.outdir.check_free_space = disca_engine.extraction.check_free_space = skip
from disca_engine.cli import main
main(sys.argv[1:])
"""


@pytest.fixture
def cli_past_the_space_check():
    """``disca-engine ARGS`` in a subprocess whose free-space check passes: the disk fills
    while the run writes, as when another job writes to it meanwhile."""
    def run(*args, env=None):
        r = subprocess.run([sys.executable, "-c", _PAST_THE_CHECK, *map(str, args)], capture_output=True,
                           text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})
        return types.SimpleNamespace(returncode=r.returncode, stdout=r.stdout, stderr=r.stderr)
    return run
