"""TensorFlow starts quietly: absl start-up lines are dropped, everything else on stderr kept."""

from __future__ import annotations

import subprocess
import sys

_FILTER = """
import os
from harness import tfcompat
with tfcompat._quiet_native_startup():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written\\n")
    os.write(2, b"I0000 00:00:1795571018.841468   11130 port.cc:153] oneDNN custom operations\\n")
    os.write(2, b"E0000 00:00:1795571020.608120   11130 cuda_platform.cc:52] failed cuInit\\n")
    os.write(2, b"a real problem: keep me\\n")
"""


def _stderr(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stderr


def test_only_absl_startup_lines_are_dropped():
    err = _stderr(_FILTER)
    assert err == "a real problem: keep me\n"


def test_tensorflow_starts_without_native_log_lines():
    err = _stderr("from harness import tfcompat; tfcompat.keras(); print('x')")
    assert "port.cc" not in err and "absl::InitializeLog" not in err and "cuInit" not in err
