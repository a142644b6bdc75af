"""The one place TensorFlow is loaded.

tensorflow-model-optimization (QAT) needs Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be set
before TensorFlow is imported for the first time. Every module that needs TF, tf_keras or tfmot
gets them from here, lazily, so commands that only talk to phones never pay for TF.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from types import ModuleType

from harness.stdio import captured_fd2

# absl's format: severity+date, time, thread, file:line]. TF's native start-up logs (oneDNN
# notice, CUDA probing on a CPU-only machine) are written through absl before its logging is
# initialized, and absl then ignores TF_CPP_MIN_LOG_LEVEL (abseil-cpp#1718).
_ABSL_LINE = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+:\d+\] ")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"
_started = False


def _prepare_env() -> None:
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError(
            "tensorflow was imported before harness.tfcompat set TF_USE_LEGACY_KERAS"
        )
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _quiet_native_startup() -> Iterator[None]:
    """Hold fd 2 while TensorFlow starts; give back every line that is not an absl start-up
    log line (Python warnings and errors still show)."""
    lines: list[bytes] = []
    try:
        with captured_fd2(lines):
            yield
    finally:
        kept = [
            ln for ln in lines if not _ABSL_LINE.match(ln) and not ln.startswith(_ABSL_PREAMBLE)
        ]
        if kept:
            os.write(2, b"".join(kept))


def _start() -> None:
    """Import TensorFlow once, quietly, and let it probe its devices (the CUDA probe logs too)."""
    global _started
    if _started:
        return
    _prepare_env()
    with _quiet_native_startup():
        import tensorflow

        tensorflow.config.list_physical_devices()
    _started = True


def tf() -> ModuleType:
    _start()
    import tensorflow

    return tensorflow


def keras() -> ModuleType:
    """tf_keras (Keras 2), the Keras used for training and conversion."""
    _start()
    import tf_keras

    return tf_keras


def tfmot() -> ModuleType:
    _start()
    import tensorflow_model_optimization

    return tensorflow_model_optimization
