"""Helpers shared by the benchmark scripts: a private adb server and virtual phone."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def lab(profiles: tuple[str, ...] = ("SM-G973F",)) -> Iterator[tuple[object, list]]:
    """A private HARNESS_HOME + adb server + virtual phones, torn down afterwards."""
    from harness.devices import adb
    from harness.virtual import manager

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as home:
        os.environ["HARNESS_HOME"] = home
        server = adb.AdbServer("127.0.0.1", free_port())
        os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
        adb.ensure_server(server)
        records = []
        try:
            for profile in profiles:
                records.append(manager.start(profile, port=free_port(), servers=[server]))
            yield server, records
        finally:
            for record in records:
                manager.stop(record.serial)
            adb.kill_server(server)


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(name: str, payload: dict) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def report(name: str, title: str, result: dict) -> dict:
    """Print a benchmark's figures as a table and save them to benchmarks/out/NAME.json."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)
    save(name, result)
    return result
