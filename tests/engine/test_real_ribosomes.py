"""The default method on the 40 real EMPIAR-10499 70S ribosomes (one structure): at least
36 of them in one cluster (K = 1 is the right answer), with the particle mask sized from
the data. About a minute and a half on 2 cores."""
import json
import os
import re
import subprocess
import sys

import pytest

REAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "real",
                    "empiar10499_ribosomes", "particles.star")


def test_the_real_ribosomes_are_one_structure(tmp_path):
    pytest.importorskip("tensorflow")
    proc = subprocess.run([sys.executable, "-m", "disca_engine", "cluster", "--input", REAL,
                           "--output", str(tmp_path / "run"), "--threads", "2", "--no-report"],
                          capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "run" / "report.json") as fh:
        report = json.load(fh)
    assert max(report["cluster_sizes"]) >= 36, report["cluster_sizes"]
    diameter = float(re.search(r"particle mask: diameter [\d.]+ voxels \((\d+) A\)",
                               proc.stdout).group(1))
    assert 220 <= diameter <= 280
    assert "merge test" in proc.stdout
