"""The ``cluster`` output folder: never destroyed, never mixed.

- A previous run is replaced only with ``--overwrite``, and only after every check passed:
  the new run is written beside it (``OUTDIR/.disca-new``) and swapped in at the end;
  only the names the engine wrote (listed in ``disca-run.json``) are removed. A killed
  ``--overwrite`` leaves the old run as it was (and ``.disca-new``, which the next
  ``--overwrite`` clears; it cannot be resumed).
- ``clusters.star`` is written last: a folder holding it holds a finished run.
- ``--resume`` continues only the run of the checkpoint's input and settings
  (``checkpoint/fingerprint.json``), and says which item differs otherwise.
"""
import json
import os
import shutil

from .. import contract
from .. import settings as S
from ..errors import EngineError
from ..io.atomic import atomic_path
from ..io.manifest import owned_names, remove, swap_in, write_manifest

FINGERPRINT = "fingerprint.json"


class RunFolder:
    """Where this run writes (``workdir``) and what becomes of ``outdir`` at the end."""

    def __init__(self, outdir, options, created):
        self.outdir = outdir
        self.created = created  # made for this run (by its lock): removed again on an early failure
        owned = owned_names(outdir)
        self.previous = owned  # engine names of an earlier run, replaced on --overwrite
        finished = contract.is_finished_run(outdir)  # the one rule, as predict and the plugin read it
        partial = os.path.isdir(os.path.join(outdir, contract.CHECKPOINT_DIR))
        foreign = [n for n in contract.CLUSTER_OUTPUTS
                   if n not in owned and os.path.lexists(os.path.join(outdir, n))]
        if foreign:
            raise EngineError(f"{outdir} holds {', '.join(foreign)} that disca-engine did not write: move "
                              "them away or choose another --output (nothing was changed)")
        self.finished = finished and not options.overwrite
        if (finished or partial) and not (options.resume or options.overwrite):
            if finished:
                raise EngineError(f"{outdir} already holds a finished clustering run: choose another "
                                  "--output, or add --overwrite to replace it")
            raise EngineError(f"{outdir} holds an unfinished clustering run: add --resume to continue it, "
                              "or --overwrite to start again")
        self.resume = bool(options.resume) and (finished or partial)
        self.staged = bool(options.overwrite) and bool(owned)
        self.workdir = os.path.join(outdir, contract.STAGING_DIR) if self.staged else outdir

    def start(self):
        """Create the folder the run writes to (after every check passed)."""
        if self.staged:
            shutil.rmtree(self.workdir, ignore_errors=True)  # a killed earlier --overwrite
        write_manifest(self.workdir, "cluster", contract.CLUSTER_OUTPUTS)

    def abandon(self):
        """After a failure before the first checkpoint: leave the folder as it was (without
        a previous run, none of the engine's names was there before this one)."""
        if self.staged:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.created:
            shutil.rmtree(self.outdir, ignore_errors=True)
        else:
            for name in contract.CLUSTER_OUTPUTS:
                remove(os.path.join(self.outdir, name))

    def commit(self):
        """Swap a staged run in: the old marker goes first, the new one comes last."""
        if self.staged:
            swap_in(self.outdir, self.workdir, self.previous, marker=contract.CLUSTERS_STAR)



# ---------------------------------------------------------------------------- fingerprint
def fingerprint(star_path, table, paths, request):
    """What makes a run the same run: its input (STAR, image names, each file's size and
    modification time), the method's settings and the run options that change the result
    (``settings.RESULT_OPTIONS``), with the K range as the user gave it."""
    files = {}
    for p in paths:
        if p not in files:
            st = os.stat(p)
            files[p] = [st.st_size, st.st_mtime_ns]
    settings = {"method": S.as_dict(request.method), "k_range_given": request.k_range_given}
    for name in S.RESULT_OPTIONS:
        settings[name] = getattr(request.options, name)
    if settings["init_model"]:
        settings["init_model"] = os.path.abspath(settings["init_model"])
    return {"input": os.path.abspath(star_path), "n": len(paths),
            "names": list(table[contract.IMAGE]), "files": files,
            "settings": json.loads(json.dumps(settings))}


def save_fingerprint(workdir, fp):
    folder = os.path.join(workdir, contract.CHECKPOINT_DIR)
    os.makedirs(folder, exist_ok=True)
    with atomic_path(os.path.join(folder, FINGERPRINT)) as tmp, open(tmp, "w") as fh:
        json.dump(fp, fh)


def check_fingerprint(outdir, fp):
    """Refuse to resume another run's checkpoint; the message names the first difference."""
    path = os.path.join(outdir, contract.CHECKPOINT_DIR, FINGERPRINT)
    fix = "run with the checkpoint's input and settings, or use --overwrite to start again"
    try:
        with open(path) as fh:
            old = json.load(fh)
    except (OSError, ValueError):
        raise EngineError(f"--resume: {outdir} has no readable input fingerprint (made by an older "
                          f"disca-engine or damaged), so it cannot be checked: {fix}")
    why = _difference(old, fp)
    if why:
        raise EngineError(f"--resume: {why} since the checkpoint in {outdir}: {fix}")


def _difference(old, new):
    if old.get("n") != new["n"]:
        return f"the input has {new['n']} subtomograms, the checkpoint's had {old.get('n')}"
    for row, (a, b) in enumerate(zip(old.get("names", []), new["names"])):
        if a != b:
            return f"input row {row + 1} is {b}, the checkpoint's was {a}"
    old_files = old.get("files", {})
    for path, stat in new["files"].items():
        if old_files.get(path) != stat:
            what = "is another file" if path not in old_files else "changed (size or modification time)"
            return f"subtomogram file {path} {what}"
    old_s, new_s = _flat(old.get("settings", {})), _flat(new["settings"])
    for key in sorted(set(old_s) | set(new_s)):
        if old_s.get(key) != new_s.get(key):
            return f"setting {key} is {_show(key, new_s.get(key))}, the checkpoint's was {_show(key, old_s.get(key))}"
    return None


def _flat(settings, prefix=""):
    """Nested settings as {dotted name: value}: a difference is named by its setting."""
    out = {}
    for key, value in settings.items():
        name = key if prefix in ("", "method.") else prefix + key
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def _show(key, value):
    if key == "k_range" and isinstance(value, list):
        return contract.format_k_range(value)
    return json.dumps(value)
