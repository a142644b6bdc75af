"""Consoles for output. Created on first use, never at import time."""

from __future__ import annotations

import functools

from rich.console import Console


@functools.cache
def console() -> Console:
    return Console()


@functools.cache
def err_console() -> Console:
    return Console(stderr=True)
