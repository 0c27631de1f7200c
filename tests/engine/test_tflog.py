"""TensorFlow's start-up noise is filtered from stderr; real errors stay visible."""
import subprocess
import sys
import textwrap

from disca_engine.tflog import is_noise


def test_noise_patterns():
    assert is_noise("E0000 00:00:1732 123 meta_optimizer.cc:966] NodeDef mentions attribute "
                    "use_unbounded_threadpool which is not in the op definition")
    assert is_noise("WARNING: All log messages before absl::InitializeLog() is called are "
                    "written to STDERR")
    assert not is_noise("E0000 cuda_driver.cc:152] failed call to cuInit: out of memory")
    assert not is_noise("disca-engine cluster: error: box 12 is smaller than 21")


def test_filter_on_file_descriptor_2():
    # C++ writes to fd 2 directly: write there, as TensorFlow does, from a child process
    code = textwrap.dedent("""
        import os, sys
        from disca_engine.tflog import quiet_tensorflow
        restore = quiet_tensorflow()
        os.write(2, b"E0000 x.cc:1] NodeDef mentions attribute foo\\n")
        os.write(2, b"E0000 y.cc:2] a real C++ error\\n")
        try:
            raise SystemExit("disca-engine cluster: error: real message")
        finally:
            restore()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "NodeDef" not in proc.stderr
    assert "a real C++ error" in proc.stderr
    assert "real message" in proc.stderr
