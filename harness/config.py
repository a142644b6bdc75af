"""Explicit configuration: argument > environment variable > default, declared once.

Nothing here runs at import time; call the functions.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

DEFAULT_ADB_HOST = "127.0.0.1"
DEFAULT_ADB_PORT = 5037


def home_dir() -> Path:
    """Per-user state: virtual phone registry and sandboxes, local hash cache, device locks.

    ``HARNESS_HOME`` overrides ``~/.cache/harness`` (tests point it at a temp folder).
    """
    env = os.environ.get("HARNESS_HOME")
    path = Path(env) if env else Path.home() / ".cache" / "harness"
    path.mkdir(parents=True, exist_ok=True)
    return path


def assets_dir() -> Path:
    """``android_assets/``: device profiles, benchmark binaries manifest, on-device scripts."""
    env = os.environ.get("HARNESS_ASSETS")
    return Path(env) if env else REPO_ROOT / "android_assets"


def adb_servers_from_env() -> list[tuple[str, int]]:
    """The adb server named by the standard ANDROID_ADB_SERVER_HOST/PORT variables."""
    host = os.environ.get("ANDROID_ADB_SERVER_HOST") or DEFAULT_ADB_HOST
    port_text = os.environ.get("ANDROID_ADB_SERVER_PORT") or str(DEFAULT_ADB_PORT)
    if problem := adb_port_problem(port_text):
        from harness.errors import UsageError

        raise UsageError(problem)
    return [(host, int(port_text))]


def adb_port_problem(port_text: str | None) -> str | None:
    """Why ANDROID_ADB_SERVER_PORT cannot be used (None: it can, or it is unset)."""
    if not port_text:
        return None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        return f"ANDROID_ADB_SERVER_PORT must be a port number (1-65535), got {port_text!r}"
    return None
