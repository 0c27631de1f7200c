"""Quiet TensorFlow's C++ start-up noise while keeping real errors visible.

``TF_CPP_MIN_LOG_LEVEL=2`` hides C++ INFO and WARNING lines but not the ERROR-level
messages TensorFlow prints on every start (``E0000 ... NodeDef mentions attribute ...``,
the absl "All log messages before absl::InitializeLog()" banner), which alarm users in
Scipion's stderr tab. Level 3 would hide those but also genuine C++ errors. So the
C++ level stays at 2 and the process's stderr (file descriptor 2, which C++ writes to
directly) is passed through a filter that drops only the lines matching ``NOISE``.
"""
import os
import re
import sys
import threading

# Lines known to be harmless (TensorFlow 2.16-2.21 on CPU-only and CUDA machines).
NOISE = re.compile(
    r"NodeDef mentions attribute"
    r"|All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|could not open file to read NUMA node"
)


def is_noise(line):
    return bool(NOISE.search(line))


def _pump(read_fd, write_fd):
    with os.fdopen(read_fd, "rb", buffering=0) as src:
        buf = b""
        while True:
            chunk = src.read(4096)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not is_noise(line.decode("utf-8", "replace")):
                    os.write(write_fd, line + b"\n")
        if buf and not is_noise(buf.decode("utf-8", "replace")):
            os.write(write_fd, buf)


def quiet_tensorflow():
    """Call before importing TensorFlow. Sets the C++ log level to 2 unless the user chose
    one, and filters the known noise out of stderr (``DISCA_TF_LOG=all`` keeps it all).
    Returns a function that flushes and restores stderr (call it before exiting)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("DISCA_TF_LOG", "").lower() == "all":
        return lambda: None
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
    except OSError:  # no usable fd 2 (e.g. embedded): leave stderr alone
        return lambda: None
    thread = threading.Thread(target=_pump, args=(read_fd, original), daemon=True)
    thread.start()

    def restore():
        try:
            sys.stderr.flush()
        except Exception:
            pass
        os.dup2(original, 2)   # closes the pipe's last writer: the pump sees EOF
        thread.join(timeout=5)
    return restore
