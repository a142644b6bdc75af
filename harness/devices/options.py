"""Typer option types shared by every command that talks to phones."""

from __future__ import annotations

from typing import Annotated

import typer

AdbOption = Annotated[
    list[str] | None,
    typer.Option(
        "--adb",
        metavar="HOST:PORT",
        help="adb server to use (repeatable, one per lab host). Default: "
        "ANDROID_ADB_SERVER_HOST/PORT, else 127.0.0.1:5037 (started if not running).",
    ),
]
DeviceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--device",
        "-d",
        metavar="SERIAL|MODEL|GLOB",
        help="Device by serial (SERIAL@HOST:PORT when two adb servers list it), model-code "
        "prefix (SM-G973 matches SM-G973F) or glob (repeatable).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
