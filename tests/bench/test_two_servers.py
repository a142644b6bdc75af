"""Two adb servers that list the same serial are two devices (issue 14): one virtual phone
reached through two adb servers (the issue's "two adb servers that both reach one
127.0.0.1:PORT") is measured once per server in one run, and neither overwrites the other's
cells; ``--resume`` re-measures the failed cells of one server only."""

from __future__ import annotations

import threading

import pytest

from harness.bench import worker as bench_worker
from harness.bench.run import BenchOptions, run_bench
from harness.devices import adb as adb_mod
from harness.devices.adb import AdbServer
from harness.report.data import load_run
from harness.store import Store
from harness.virtual import manager
from tests.conftest import CORRECT_GPU, free_port

_RUN = bench_worker.DeviceWorker._run  # the bench's own, before any test wraps it


@pytest.fixture
def second_server(adb_server):
    server = AdbServer("127.0.0.1", free_port())
    adb_mod.ensure_server(server)
    yield server
    adb_mod.kill_server(server)


@pytest.fixture
def shared_phone(adb_server, second_server):
    record = manager.start(
        "SM-G973F", port=free_port(), servers=[adb_server, second_server], faults=CORRECT_GPU
    )
    yield record
    if manager.find(record.serial):
        manager.stop(record.serial)


def _one_at_a_time(monkeypatch, fail_server: str | None = None):
    """Both entries reach one phone: measure them one after the other (they would share its
    working folder), and optionally fail every cell of ``fail_server`` (an internal error is
    recorded as each of its cells' failure)."""
    turn = threading.Lock()

    def run(self):
        with turn:
            if self.entry.server.address == fail_server:
                raise RuntimeError("test: this server's worker fails")
            _RUN(self)

    monkeypatch.setattr(bench_worker.DeviceWorker, "_run", run)


def test_one_serial_on_two_servers_keeps_both_devices_cells(
    bench_model, adb_server, second_server, shared_phone, tmp_path, monkeypatch
):
    serial = shared_phone.serial
    servers = (adb_server.address, second_server.address)
    listed = adb_mod.list_devices([adb_server, second_server])
    assert sorted(e.server.address for e in listed if e.serial == serial) == sorted(servers)
    opts = BenchOptions(
        model=str(bench_model),
        adb=servers,
        devices=tuple(f"{serial}@{s}" for s in servers),
        store=str(tmp_path / "r.db"),
        variants="softmax-fp32",
        delegates="cpu,gpu",
        runs=2,
        warmup=0,
        repeats=1,
        images=1,
    )
    _one_at_a_time(monkeypatch, fail_server=second_server.address)
    first = run_bench(opts)
    assert first.status == "partial" and len(first.cells) == 4
    failed = {c.server for c in first.cells if not c.measured}
    assert failed == {second_server.address}

    _one_at_a_time(monkeypatch)
    again = run_bench(BenchOptions(model=str(bench_model), store=opts.store), resume=first.run_id)
    assert again.status == "complete", [(c.server, c.reason) for c in again.cells]
    assert again.skipped_cells == 2
    assert {c.server for c in again.cells} == {second_server.address} and len(again.cells) == 2

    with Store(opts.store) as store:
        cells = store.cells(first.run_id)
        assert len(cells) == 4 and all(c.measured for c in cells)
        assert {(c.server, c.delegate) for c in cells} == {
            (s, d) for s in servers for d in ("cpu", "gpu")
        }
        assert all(c.serial == serial for c in cells)
        run = load_run(store, first.run_id)
    # The report names each device with its server: the serial alone is ambiguous here.
    assert sorted(d.shown for d in run.devices) == sorted(f"{serial}@{s}" for s in servers)
    assert not run.missing and len({c.shown_serial for c in run.cells}) == 2
