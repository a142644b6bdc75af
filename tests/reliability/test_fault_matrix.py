"""The fault matrix: every fault a device lab sees, injected into a real ``harness bench`` run
on a virtual phone (docs/reliability.md).

Each case asserts: the run completes or stops with the documented exit code; every cell the
run reported is in the store exactly as reported (none lost); ``--resume`` completes the rest
without measuring finished cells again; no process, port or adb registration is leaked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.devices import adb
from harness.devices.adb import AdbServer
from harness.errors import ExitCode
from harness.virtual import manager
from harness.virtual.chaos import ChaosSpec, Drop
from tests.conftest import CORRECT_GPU, adb_cli, free_port
from tests.reliability.conftest import (
    LEDGER,
    assert_no_leaks,
    integrity_ok,
    one_line_error,
    processes_in_sandbox,
    run_bench_cli,
    start_bench,
    stored_cells,
    wait_for_cells,
)

THREE = ("--variants", "softmax-fp32,sigmoid-fp32,logits-fp32", "--delegates", "cpu")
SIX = ("--variants", "softmax-fp32,sigmoid-fp32,logits-fp32", "--delegates", "cpu,gpu")
# Mid-run faults strike after the first cell; a short cooldown keeps the rest of the run long
# enough for that on a loaded machine.
MID = (*SIX, "--cooldown", "0.3")


@dataclass(frozen=True)
class Fault:
    name: str
    args: tuple[str, ...]  # bench options besides the short-run ones
    code: ExitCode  # documented exit code of the faulty run
    failed: dict[str, str] = field(default_factory=dict)  # variant -> reason substring
    phone_log: str = ""  # proof in the phone's log that the fault fired


def _bm(action: str, variant: str, when: str = "any"):
    def inject(phone, sha):
        manager.set_chaos(phone.serial, [{"match": sha[variant], "action": action, "when": when}])

    return inject


def _link(**faults):
    def inject(phone, sha):
        manager.set_link_chaos(phone.serial, **faults)

    return inject


# Faults switched on before the run starts.
BEFORE = [
    (
        Fault(
            "crash",
            THREE,
            ExitCode.PARTIAL,
            {"softmax-fp32": "crashed (SIGSEGV, exit 139)"},
        ),
        _bm("crash", "softmax-fp32"),
    ),
    (
        Fault(
            "hang",
            (*THREE, "--timeout", "3"),
            ExitCode.PARTIAL,
            {"sigmoid-fp32": "latency pass timed out after 3s"},
        ),
        _bm("hang", "sigmoid-fp32", "latency"),
    ),
    (
        Fault(
            "truncated-output",
            THREE,
            ExitCode.PARTIAL,
            {"logits-fp32": "wrong output size"},
        ),
        _bm("truncate", "logits-fp32", "accuracy"),
    ),
    (
        Fault(
            "drop-during-push",
            THREE,
            ExitCode.OK,
            phone_log="dropping the connection after",
        ),
        _link(drop=Drop(after=4096, match=".tflite", op="send")),
    ),
    (
        Fault(
            "drop-during-pull",
            THREE,
            ExitCode.OK,
            phone_log="bytes of recv /data/local/tmp/harness/out/current/all.bin",
        ),
        _link(drop=Drop(after=1024, match="all.bin", op="recv")),
    ),
    (
        Fault(
            "link-keeps-dropping",
            (*THREE, "--reconnect-wait", "1"),
            ExitCode.PARTIAL,
            {v: "gave up after 4 tries" for v in ("softmax-fp32", "sigmoid-fp32", "logits-fp32")},
            phone_log="dropping the connection after",
        ),
        _link(drop=Drop(after=1, times=1000, match=".tflite", op="send")),
    ),
    (
        Fault("offline-at-start", THREE, ExitCode.OK, phone_log="chaos: offline"),
        _link(offline=3),
    ),
    (
        Fault("slow-link", THREE, ExitCode.OK, phone_log='link faults now {"slow": 32768}'),
        _link(slow=32 * 1024),
    ),
    (
        Fault(
            "storage-full",
            THREE,
            ExitCode.PARTIAL,
            {v: "No space left on device" for v in ("softmax-fp32", "sigmoid-fp32", "logits-fp32")},
        ),
        _link(storage_free=0),
    ),
]


def _check_run(result, store, fault: Fault, total: int):
    """Exit code, one-line error, and every reported cell in the store as reported."""
    assert result.returncode == fault.code, result.stderr
    if fault.code:
        assert one_line_error(result.stderr), result.stderr
    payload = result.payload
    run, cells = stored_cells(store, payload["run"])
    LEDGER.check(fault.name, payload, cells)
    reported = {(c["variant"], c["delegate"], c["status"], c["reason"]) for c in payload["cells"]}
    assert reported == {(c.variant_id, c.delegate, c.status.value, c.reason) for c in cells}
    assert len(cells) == total and integrity_ok(store)
    for cell in cells:
        expected = next((r for v, r in fault.failed.items() if v == cell.variant_id), None)
        if expected is None:
            assert cell.measured, (cell.variant_id, cell.reason)
            assert cell.latency.avg_ms > 0 and cell.accuracy.signature == "ok"
        else:
            assert not cell.measured and expected in cell.reason, cell.reason
    assert run["status"] == ("complete" if fault.code == ExitCode.OK else "partial")
    return run, cells


def _resume_completes(model, phone, store, run_id: str, before, total: int) -> None:
    """--resume measures exactly the cells that are not ok yet, and keeps the others."""
    kept = {c.key: c.started for c in before if c.measured}
    again = run_bench_cli(model, phone.serial, store, "--resume", run_id, "--json")
    assert again.returncode == 0, again.stderr
    assert len(again.payload["cells"]) == total - len(kept)
    run, cells = stored_cells(store, run_id)
    LEDGER.check(None, again.payload, cells)
    assert run["status"] == "complete" and len(cells) == total and all(c.measured for c in cells)
    assert all(c.started == kept[c.key] for c in cells if c.key in kept)  # never re-measured
    assert integrity_ok(store)


@pytest.mark.parametrize(("fault", "inject"), BEFORE, ids=[f.name for f, _ in BEFORE])
def test_fault_before_run(fault, inject, bench_model, phone, variant_sha, adb_server, tmp_path):
    store = tmp_path / "r.db"
    inject(phone, variant_sha)
    result = run_bench_cli(bench_model, phone.serial, store, *fault.args, "--json")
    run, cells = _check_run(result, store, fault, total=3)
    if fault.phone_log:
        assert fault.phone_log in Path(phone.log).read_text()
    if fault.name == "drop-during-pull":  # the pull was retried inside the cell
        assert sum(c.latency.extra["retries"] for c in cells) >= 1
    if fault.name == "slow-link":  # every pushed byte went through the throttled link
        assert result.seconds > result.payload["bytes_pushed"] / (32 * 1024)
    manager.apply_chaos(phone.serial, ChaosSpec())  # the fault is over
    if fault.code != ExitCode.OK:
        _resume_completes(bench_model, phone, store, run["id"], cells, total=3)
    assert_no_leaks(phone, adb_server)


def _start_and_wait_first_cell(model, phone, store, *args):
    proc = start_bench(model, phone.serial, store, *args)
    assert wait_for_cells(store, 1, proc) >= 1, proc.communicate()[1]
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 180):
    from tests.reliability.conftest import BenchResult

    out, err = proc.communicate(timeout=timeout)
    return BenchResult(proc.returncode, out, err, 0.0)


def _benchmark_processes(root: str) -> set[int]:
    """The processes doing a benchmark_model's work on the phone: forked by the phone's fork
    server (named benchmark_model), or a plain ``python -m ...benchmark_model``."""
    found = set()
    for pid in processes_in_sandbox(root):
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if comm == "benchmark_model" or b"harness.virtual.benchmark_model" in cmdline:
                found.add(pid)
    return found


def _hung_benchmark(root: str, sha: str, bench: subprocess.Popen) -> int | None:
    """The benchmark of the hanging variant: one that stays alive for a second while a
    command for that variant (its graph path holds the sha) is running."""
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while time.monotonic() < deadline and bench.poll() is None:
        commands = [
            pid
            for pid in processes_in_sandbox(root)
            if sha.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        alive = _benchmark_processes(root) if commands else set()
        if len(alive & seen) == 1:
            return (alive & seen).pop()
        seen = alive
        time.sleep(1.0)
    return None


def test_benchmark_killed_by_the_system(bench_model, phone, variant_sha, adb_server, tmp_path):
    """The OOM killer (SIGKILL) takes benchmark_model mid-measurement: the cell is recorded
    as crashed (exit 137), the run goes on and exits 10; --resume completes it."""
    store = tmp_path / "r.db"
    _bm("hang", "softmax-fp32", "latency")(phone, variant_sha)  # keeps it alive to be killed
    proc = start_bench(bench_model, phone.serial, store, *THREE, "--json", "--timeout", "60")
    victim = _hung_benchmark(phone.root, variant_sha["softmax-fp32"], proc)
    assert victim is not None, "benchmark_model never ran"
    os.kill(victim, signal.SIGKILL)
    result = _finish(proc)
    fault = Fault("killed", THREE, ExitCode.PARTIAL, {"softmax-fp32": "SIGKILL, exit 137"})
    run, cells = _check_run(result, store, fault, total=3)
    manager.set_chaos(phone.serial, [])
    _resume_completes(bench_model, phone, store, run["id"], cells, total=3)
    assert_no_leaks(phone, adb_server)


def test_offline_for_seconds_mid_run(bench_model, phone, adb_server, tmp_path):
    """The phone drops off for 4 s in the middle of the run: the cell in flight is measured
    again once the phone is back; the run completes."""
    store = tmp_path / "r.db"
    proc = _start_and_wait_first_cell(bench_model, phone, store, *MID, "--json")
    manager.set_link_chaos(phone.serial, offline=4)
    result = _finish(proc)
    _, cells = _check_run(result, store, Fault("offline-4s", SIX, ExitCode.OK), total=6)
    assert "chaos: offline" in Path(phone.log).read_text()
    assert sum(c.latency.extra["attempts"] - 1 + c.latency.extra["retries"] for c in cells) >= 1
    assert_no_leaks(phone, adb_server)


def test_offline_longer_than_reconnect_wait(bench_model, phone, adb_server, tmp_path):
    """A phone that does not come back within --reconnect-wait fails its remaining cells
    ("device lost"), the run exits 10; once it is back, --resume completes the run."""
    store = tmp_path / "r.db"
    proc = _start_and_wait_first_cell(
        bench_model, phone, store, *MID, "--json", "--reconnect-wait", "2"
    )
    manager.set_link_chaos(phone.serial, offline=600)
    result = _finish(proc)
    assert result.returncode == ExitCode.PARTIAL and one_line_error(result.stderr)
    run, cells = stored_cells(store, result.payload["run"])
    LEDGER.check("offline-too-long", result.payload, cells)
    assert len(cells) == 6 and run["status"] == "partial" and integrity_ok(store)
    lost = [c for c in cells if not c.measured]
    assert lost and all("device lost" in c.reason for c in lost)
    assert any(c.measured for c in cells)
    manager.set_link_chaos(phone.serial)  # back online (the adb server may still say offline)
    _resume_completes(bench_model, phone, store, run["id"], cells, total=6)
    assert_no_leaks(phone, adb_server)


def test_sigterm_mid_run_then_resume(bench_model, phone, adb_server, tmp_path):
    """A lab runner stopping the bench (SIGTERM): exit 130, finished cells kept."""
    store = tmp_path / "r.db"
    proc = _start_and_wait_first_cell(bench_model, phone, store, *MID)
    proc.send_signal(signal.SIGTERM)
    result = _finish(proc, timeout=60)
    assert result.returncode == ExitCode.INTERRUPTED, result.stderr
    run, cells = stored_cells(store)
    assert run["status"] == "interrupted" and cells and all(c.measured for c in cells)
    LEDGER.faults.add("sigterm")
    _resume_completes(bench_model, phone, store, run["id"], cells, total=6)
    assert_no_leaks(phone, adb_server)


def test_adb_server_restart_mid_run(bench_model, tmp_path):
    """The adb server dies mid-run: the bench starts it again, reconnects the phone and
    completes."""
    server = AdbServer("127.0.0.1", free_port())
    adb.ensure_server(server)
    record = manager.start("SM-G973F", port=free_port(), servers=[server], faults=CORRECT_GPU)
    try:
        store = tmp_path / "r.db"
        proc = start_bench(
            bench_model, record.serial, store, *MID, "--json", "--adb", server.address
        )
        assert wait_for_cells(store, 1, proc) >= 1
        adb_cli(server, "kill-server")
        result = _finish(proc)
        _check_run(result, store, Fault("adb-restart", SIX, ExitCode.OK), total=6)
        assert_no_leaks(record, server)
    finally:
        if manager.find(record.serial):
            manager.stop(record.serial)
        adb.kill_server(server)
