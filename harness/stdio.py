"""Capturing what native code writes to file descriptor 2 (it bypasses ``sys.stderr``)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def captured_fd2(sink: list[bytes]) -> Iterator[None]:
    """Send fd 2 to a temporary file for the block; its lines (with their line ends) are
    appended to ``sink`` when the block ends, however it ends. Used to filter or forward the
    logs of TensorFlow and LiteRT, which write to fd 2 from C++."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.extend(tmp.read().splitlines(keepends=True))
