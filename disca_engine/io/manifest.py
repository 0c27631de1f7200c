"""``disca-run.json``: the top-level names an engine run wrote in its folder, so that
``--overwrite`` removes those and nothing of the user's."""
import json
import os
import shutil

from .. import contract
from .atomic import atomic_path


def _read(folder):
    with open(os.path.join(folder, contract.RUN_MANIFEST)) as fh:
        return json.load(fh)


def command_of(folder):
    """The command whose manifest ``folder`` holds, or None."""
    try:
        return _read(folder).get("command")
    except (OSError, ValueError, AttributeError):
        return None


def remove(path):
    """Remove one name a run owns: file, link or folder."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def swap_in(folder, staged, previous, marker=None):
    """Replace the ``previous`` names of ``folder`` by everything in ``staged`` (then
    removed). A completion ``marker`` goes first and comes back last, so a kill part-way
    never leaves a folder that looks finished."""
    if marker:
        remove(os.path.join(folder, marker))
    for name in previous:
        remove(os.path.join(folder, name))
    for name in sorted(os.listdir(staged), key=lambda n: n == marker):
        os.replace(os.path.join(staged, name), os.path.join(folder, name))
    os.rmdir(staged)


def owned_names(folder):
    """Top-level names a previous engine run wrote in ``folder``."""
    try:
        return list(_read(folder)["outputs"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    legacy = (contract.REPORT_JSON, contract.CHECKPOINT_DIR)  # runs made before the manifest
    if any(os.path.exists(os.path.join(folder, n)) for n in legacy):
        return list(contract.CLUSTER_OUTPUTS)
    return []


def write_manifest(folder, command, outputs):
    os.makedirs(folder, exist_ok=True)
    with atomic_path(os.path.join(folder, contract.RUN_MANIFEST)) as tmp, open(tmp, "w") as fh:
        json.dump({"command": command, "outputs": list(outputs)}, fh, indent=1)


def record_written(folder, command, candidates, also=()):
    """At the end of a run: the manifest lists the ``candidates`` that exist now, plus
    ``also`` (names about to be written), instead of every name a run could write."""
    names = [n for n in candidates if n in also or n == contract.RUN_MANIFEST
             or os.path.lexists(os.path.join(folder, n))]
    write_manifest(folder, command, names)


def add_written(folder, command, names):
    """Names a later command (``report``) writes into a finished run's folder."""
    owned = owned_names(folder)
    write_manifest(folder, command, owned + [n for n in names if n not in owned])
