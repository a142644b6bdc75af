"""Shared fixtures: an isolated HARNESS_HOME, a private adb server, virtual phones."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.devices import adb as adb_mod
from harness.devices.adb import AdbServer
from harness.virtual import manager


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def harness_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("harness-home")
    old = os.environ.get("HARNESS_HOME")
    os.environ["HARNESS_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("HARNESS_HOME", None)
    else:
        os.environ["HARNESS_HOME"] = old


@pytest.fixture(scope="session")
def adb_server(harness_home: Path) -> Iterator[AdbServer]:
    """A private adb server (the binary bundled with adbutils) on a free port."""
    server = AdbServer("127.0.0.1", free_port())
    old = os.environ.get("ANDROID_ADB_SERVER_PORT")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
    adb_mod.ensure_server(server)
    yield server
    for record in manager.list_virtual():
        manager.stop(record.serial)
    adb_mod.kill_server(server)
    if old is None:
        os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
    else:
        os.environ["ANDROID_ADB_SERVER_PORT"] = old


@pytest.fixture
def start_phone(adb_server: AdbServer):
    """Factory: start a virtual phone on the private adb server; stopped after the test."""
    started: list[str] = []

    def _start(
        profile: str = "SM-G973F",
        port: int | None = None,
        faults: tuple[str, ...] = (),
        delegate: str | None = None,
    ):
        record = manager.start(
            profile,
            port=port or free_port(),
            servers=[adb_server],
            faults=faults,
            delegate=delegate,
        )
        started.append(record.serial)
        return record

    yield _start
    for serial in started:
        if manager.find(serial):
            manager.stop(serial)


def adb_cli(server: AdbServer, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The plain adb binary, talking to the same server."""
    return subprocess.run(
        [adb_mod.adb_binary(), "-P", str(server.port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Phones for tests that need the GPU to compute *correctly*, whatever the test model's logit
# range: "none" drops the profile's default faults and runs the current GPU delegate (the
# SM-G973F's default, the 2019 OpenGL delegate, gives NaN for any model whose softmax input
# passes ln(65504), which a trained fixture model may or may not do). A test that needs the
# bug picks that generation and makes its model's logits large on purpose (tests/diagnose).
CORRECT_GPU = ("none",)


@pytest.fixture(scope="module")
def phones(adb_server: AdbServer):
    """Virtual SM-G973F and SM-G973U whose GPUs compute correctly, shared by a module's tests."""
    f = manager.start("SM-G973F", port=free_port(), servers=[adb_server], faults=CORRECT_GPU)
    u = manager.start("SM-G973U", port=free_port(), servers=[adb_server], faults=CORRECT_GPU)
    yield f, u
    for record in (f, u):
        if manager.find(record.serial):
            manager.stop(record.serial)
