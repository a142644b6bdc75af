"""Shared by the fault-matrix tests: a fresh virtual phone per test, the bench CLI, leak checks.

The tiny converted model is the bench tests' session fixture (built once per session).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.devices import adb
from harness.store import Store
from harness.virtual import manager
from tests.bench.conftest import bench_model  # noqa: F401  (session fixture, reused)
from tests.conftest import CORRECT_GPU, free_port

# Short runs: the matrix measures behaviour under faults, not speed.
FAST = ("--runs", "2", "--warmup", "0", "--repeats", "1", "--images", "1")


@dataclass
class BenchResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def payload(self) -> dict:
        return json.loads(self.stdout)


def bench_args(model, serial: str, store, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness",
        "bench",
        "--model",
        str(model),
        "--device",
        serial,
        "--store",
        str(store),
        *FAST,
        *extra,
    ]


def start_bench(model, serial: str, store, *extra: str) -> subprocess.Popen:
    """``harness bench`` as a user runs it (its own process)."""
    return subprocess.Popen(
        bench_args(model, serial, store, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def run_bench_cli(model, serial: str, store, *extra: str, timeout: float = 180) -> BenchResult:
    t0 = time.monotonic()
    proc = start_bench(model, serial, store, *extra)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"harness bench did not finish in {timeout}s: {err[-2000:]}")
    return BenchResult(proc.returncode, out, err, time.monotonic() - t0)


class Ledger:
    """What the fault matrix checked, printed at the end of the session (the figures of
    docs/reliability.md): faults tried, cells the runs reported finished, and how many of
    those the store did not have (the goal: 0)."""

    def __init__(self) -> None:
        self.faults: set[str] = set()
        self.reported = 0
        self.lost = 0

    def check(self, fault: str | None, payload: dict, cells) -> None:
        """Count the cells a run reported and those the store lacks (fault None: a resume)."""
        if fault:
            self.faults.add(fault)
        stored = {(c.serial, c.variant_id, c.delegate, c.status.value) for c in cells}
        for c in payload["cells"]:
            self.reported += 1
            self.lost += (c["device"], c["variant"], c["delegate"], c["status"]) not in stored


LEDGER = Ledger()


def pytest_terminal_summary(terminalreporter) -> None:
    if LEDGER.faults:
        terminalreporter.write_line(
            f"reliability: {len(LEDGER.faults)} faults tried, {LEDGER.reported} cells "
            f"reported by the runs, {LEDGER.lost} of them missing from the store"
        )


def one_line_error(stderr: str) -> bool:
    """The documented contract: one line on stderr, no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return len(lines) == 1 and "Traceback" not in stderr


def stored_cells(store_path, run_id: str | None = None):
    with Store(store_path) as store:
        run_id = run_id or store.runs()[-1]["id"]
        return store.run(run_id), store.cells(run_id)


def wait_for_cells(store_path, n: int, proc: subprocess.Popen | None = None, timeout=120) -> int:
    """Poll the store (as another process would) until ``n`` cells of the latest run exist."""
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return done
        if Path(store_path).exists():
            try:
                with Store(store_path) as store:
                    runs = store.runs()
                    done = len(store.cells(runs[-1]["id"])) if runs else 0
            except sqlite3.Error:  # being created by the bench process
                done = 0
            if done >= n:
                return done
        time.sleep(0.05)
    return done


def integrity_ok(store_path) -> bool:
    with sqlite3.connect(store_path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- leaks ---------------------------------------------------------------------------------------


def _proc_ids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


FORK_SERVER = b"harness.virtual.benchmark_model.forkserver"


def processes_in_sandbox(root: str, *, fork_server: bool = False) -> list[int]:
    """Processes started by a virtual phone (benchmark_model, sh): they carry its root in
    their environment. The phone's benchmark_model fork server is one of them, but it lives
    as long as the phone; it is counted only with ``fork_server``."""
    needle = f"HARNESS_VIRTUAL_ROOT={Path(root).resolve()}".encode()
    found = []
    for pid in _proc_ids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if needle not in handle.read().split(b"\0"):
                    continue
            if fork_server or not _is_fork_server(pid) or _is_fork_server(_parent(pid)):
                found.append(pid)  # a benchmark forked by the server is counted
        except OSError:
            continue
    return found


def _is_fork_server(pid: int) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return FORK_SERVER in handle.read().split(b"\0")


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def children(pid: int | None = None) -> set[int]:
    """Live child processes of ``pid`` (default: this test process); zombies excluded."""
    pid = os.getpid() if pid is None else pid
    kids = set()
    for p in _proc_ids():
        try:
            with open(f"/proc/{p}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.add(p)
    return kids


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def assert_no_leaks(record, server) -> None:
    """Stop the phone; nothing may be left: its processes, its port, its adb registration."""
    assert wait_until(lambda: not processes_in_sandbox(record.root)), (
        f"processes left on the phone: {processes_in_sandbox(record.root)}"
    )
    manager.stop(record.serial)
    assert not manager._pid_alive(record.pid), "virtual phone process still alive"
    assert wait_until(lambda: not processes_in_sandbox(record.root, fork_server=True)), (
        "the phone's benchmark_model fork server outlived it"
    )
    assert wait_until(lambda: manager.port_free(record.port)), f"port {record.port} still bound"
    assert adb.server_reachable(server), "the adb server died"
    listed = {e.serial for e in adb.list_devices([server], start=False)}
    assert record.serial not in listed, "the stopped phone is still registered"


@pytest.fixture
def phone(adb_server):
    """A fresh SM-G973F with no chaos (and, at the end, no leaks: see assert_no_leaks)."""
    before = children()
    record = manager.start("SM-G973F", port=free_port(), servers=[adb_server], faults=CORRECT_GPU)
    yield record
    if manager.find(record.serial):
        manager.stop(record.serial)
    leaked = children() - before
    assert not leaked, f"child processes left behind: {sorted(leaked)}"


@pytest.fixture
def variant_sha(bench_model):  # noqa: F811
    from harness.convert.variants import read_manifest

    return {v.id: v.sha256[:16] for v in read_manifest(bench_model).variants}
