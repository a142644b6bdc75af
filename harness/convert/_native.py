"""Silence output that native (C++) code writes straight to file descriptors 1 and 2."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["native_output_silenced"]


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Send the process's stdout/stderr file descriptors to /dev/null meanwhile.

    The MLIR converter prints calibration chatter ("fully_quantize: 0, ...") and LiteRT
    announces its XNNPACK delegate from C++, below Python's sys.stdout; errors still arrive
    as Python exceptions.
    """
    saved: list[int] = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        for fd in (1, 2):
            try:
                saved.append(os.dup(fd))
                os.dup2(devnull, fd)
            except OSError:
                saved.append(-1)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=False):
            if copy >= 0:
                os.dup2(copy, fd)
                os.close(copy)
        os.close(devnull)
