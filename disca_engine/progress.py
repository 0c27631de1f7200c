"""One progress line per stage, with elapsed time and an estimate of what is left.

Lines go to stdout and are flushed at once so Scipion's protocol log shows them live.
"""
import sys
import time


def _fmt(seconds):
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Reports ``done/total`` of a stage with elapsed time and ETA."""

    def __init__(self, stage, total=None, stream=None, min_interval=2.0):
        self.stage = stage
        self.total = total
        self.stream = stream or sys.stdout
        self.start = time.time()
        self.min_interval = min_interval
        self._last = 0.0

    def log(self, message):
        elapsed = time.time() - self.start
        print(f"[{self.stage}] {message} (elapsed {_fmt(elapsed)})", file=self.stream, flush=True)

    def update(self, done, extra="", force=False):
        now = time.time()
        if not force and now - self._last < self.min_interval and done != self.total:
            return
        self._last = now
        elapsed = now - self.start
        if self.total:
            eta = elapsed / done * (self.total - done) if done else float("nan")
            eta_s = _fmt(eta) if done else "?"
            msg = f"{done}/{self.total} ({100.0 * done / self.total:.0f}%), elapsed {_fmt(elapsed)}, left ~{eta_s}"
        else:
            msg = f"{done} done, elapsed {_fmt(elapsed)}"
        print(f"[{self.stage}] {msg}{' ' + extra if extra else ''}", file=self.stream, flush=True)

    def finish(self, extra=""):
        elapsed = time.time() - self.start
        print(f"[{self.stage}] finished in {_fmt(elapsed)}{' ' + extra if extra else ''}",
              file=self.stream, flush=True)
        return elapsed
