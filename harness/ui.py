"""Consoles for output. Created on first use, never at import time.

When output is not a terminal (logs, CI), rich would wrap tables at 80 columns; use 120
unless COLUMNS says otherwise.
"""

from __future__ import annotations

import functools
import os
import sys

from rich.console import Console


def _width(stream) -> int | None:
    if "COLUMNS" in os.environ or stream.isatty():
        return None
    return 120


@functools.cache
def console() -> Console:
    return Console(width=_width(sys.stdout))


@functools.cache
def err_console() -> Console:
    return Console(stderr=True, width=_width(sys.stderr))
