"""setup.py is only a shim: name, version and dependencies come from pyproject.toml."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pyproject(key):
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    return re.search(rf'^{key} = "([^"]+)"', text, re.M).group(1)


def test_setup_py_defers_to_pyproject(tmp_path):
    pytest.importorskip("setuptools", reason="setuptools is not installed in this environment")
    code = open(os.path.join(ROOT, "setup.py")).read()
    for word in ("install_requires", "version=", "name=", "packages="):
        assert word not in code, f"setup.py repeats metadata ({word}); keep it in pyproject.toml"
    proc = subprocess.run([sys.executable, "setup.py", "--name", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1500:]
    lines = proc.stdout.split()
    assert lines[-2:] == [_pyproject("name"), _pyproject("version")]
