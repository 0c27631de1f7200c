# -*- coding: utf-8 -*-
"""What the engine prints, read back from a protocol's log."""
import re

ITERATION_RE = re.compile(r'^(restart \d+ )?iteration \d+/\d+: .*')


def lastIteration(logText):
    """Last ``iteration i/n: K=... DDBI=...`` line the cluster command printed, or None."""
    last = None
    for line in logText.splitlines():
        if ITERATION_RE.match(line.strip()):
            last = line.strip()
    return last
