"""Concurrency: two bench processes on one phone never measure at the same time; several
processes writing one store never corrupt it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from harness.errors import ExitCode
from harness.store import Store
from tests.conftest import CORRECT_GPU
from tests.reliability.conftest import (
    LEDGER,
    assert_no_leaks,
    integrity_ok,
    one_line_error,
    run_bench_cli,
    start_bench,
    stored_cells,
    wait_for_cells,
)

SIX = ("--variants", "softmax-fp32,sigmoid-fp32,logits-fp32", "--delegates", "cpu,gpu")


def test_second_bench_on_the_same_phone_refuses(bench_model, phone, adb_server, tmp_path):
    # --cooldown keeps the first run (and its lock) busy for a while whatever the machine's load
    first = start_bench(
        bench_model, phone.serial, tmp_path / "a.db", *SIX, "--json", "--cooldown", "2"
    )
    assert wait_for_cells(tmp_path / "a.db", 1, first) >= 1
    second = run_bench_cli(bench_model, phone.serial, tmp_path / "b.db", *SIX, timeout=60)
    assert second.returncode == ExitCode.DEVICE_BUSY, second.stderr
    assert one_line_error(second.stderr) and "is busy" in second.stderr
    assert not (tmp_path / "b.db").exists()  # refused before writing anything
    assert second.seconds < 30  # refused at once, not after the first run
    out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err
    run, cells = stored_cells(tmp_path / "a.db")
    assert run["status"] == "complete" and len(cells) == 6
    LEDGER.check("second-bench-refused", json.loads(out), cells)
    assert_no_leaks(phone, adb_server)


def test_second_bench_with_wait_measures_after_the_first(bench_model, phone, adb_server, tmp_path):
    first = start_bench(
        bench_model, phone.serial, tmp_path / "a.db", *SIX, "--json", "--cooldown", "0.5"
    )
    assert wait_for_cells(tmp_path / "a.db", 1, first) >= 1
    second_started = time.time()
    second = start_bench(
        bench_model, phone.serial, tmp_path / "b.db", *SIX, "--wait", "120", "--json"
    )
    out_a, err_a = first.communicate(timeout=180)
    out_b, err_b = second.communicate(timeout=180)
    assert first.returncode == 0, err_a
    assert second.returncode == 0, err_b
    run_a, cells_a = stored_cells(tmp_path / "a.db")
    run_b, cells_b = stored_cells(tmp_path / "b.db")
    LEDGER.check("second-bench-waits", json.loads(out_a), cells_a)
    LEDGER.check("second-bench-waits", json.loads(out_b), cells_b)
    assert len(cells_a) == len(cells_b) == 6
    for a in cells_a:  # no two cells' measurement windows overlap
        for b in cells_b:
            assert a.finished <= b.started or b.finished <= a.started, (a, b)
    assert second_started < max(c.finished for c in cells_a)  # b did have to wait...
    assert run_b["created"] >= max(c.finished for c in cells_a)  # ...until a was done
    assert_no_leaks(phone, adb_server)


def test_two_benches_write_one_store(bench_model, adb_server, start_phone, tmp_path):
    """Two processes, two phones, one --store: both runs whole, the database intact."""
    phones = [
        start_phone("SM-G973F", faults=CORRECT_GPU),
        start_phone("SM-G973U", faults=CORRECT_GPU),
    ]
    store = tmp_path / "shared.db"
    procs = [start_bench(bench_model, p.serial, store, *SIX, "--json") for p in phones]
    payloads = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        payloads.append(json.loads(out))
    assert integrity_ok(store)
    with Store(store) as db:
        for payload in payloads:
            LEDGER.check("two-writers-one-store", payload, db.cells(payload["run"]))
    with Store(store) as db:
        runs = db.runs()
        assert len(runs) == 2 and all(r["status"] == "complete" for r in runs)
        for run in runs:
            cells = db.cells(run["id"])
            assert len(cells) == 6 and all(c.measured for c in cells)
            assert {c.serial for c in cells} == set(run["config"]["devices"])
    for record in phones:
        assert_no_leaks(record, adb_server)


_WRITER = textwrap.dedent(
    """
    import sys, time
    from harness.cell import Cell, DeviceId, Latency
    from harness.store import Store
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(path)  # every writer may be the one creating the file
    run = store.create_run({"writer": tag})
    for i in range(n):
        store.record_cell(
            Cell(run, DeviceId("127.0.0.1:5037", tag), f"sha{i}", f"v{i}", "cpu",
                 started=time.time(), finished=time.time(), latency=Latency(avg_ms=i),
                 log="log " * 50),
            b"x" * 2048,
        )
        store.cells(run)  # readers interleave with writers
    store.finish_run(run, "complete")
    store.close()
    """
)


def test_concurrent_writers_never_corrupt_the_store(tmp_path):
    """Six processes create one store at the same moment and commit 40 cells each."""
    store = tmp_path / "fresh" / "store.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(store), f"writer{k}", "40"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(6)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert integrity_ok(store)
    LEDGER.faults.add("six-writers-one-store")
    with Store(store) as db:
        runs = db.runs()
        assert len(runs) == 6 and all(r["status"] == "complete" for r in runs)
        assert all(len(db.cells(r["id"])) == 40 for r in runs)
