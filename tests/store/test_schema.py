"""The store's schema version: newer refused, older migrated, non-stores left untouched."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from harness.errors import UsageError
from harness.store import SCHEMA_VERSION, Store

# The schema of version 2 as harness 0.x wrote it (cells and devices keyed by serial alone):
# a copy, so that migrations are tested against what old stores really hold.
V2_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    host TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    run_id TEXT NOT NULL REFERENCES runs(id),
    serial TEXT NOT NULL,
    model TEXT NOT NULL,
    virtual INTEGER NOT NULL,
    info TEXT NOT NULL,
    PRIMARY KEY (run_id, serial)
);
CREATE TABLE IF NOT EXISTS variants (
    sha256 TEXT PRIMARY KEY,
    variant_id TEXT NOT NULL,
    model TEXT NOT NULL,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evalsets (
    fingerprint TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs(id),
    serial TEXT NOT NULL,
    variant_sha256 TEXT NOT NULL,
    variant_id TEXT NOT NULL,
    delegate TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL NOT NULL,
    latency TEXT NOT NULL DEFAULT '{}',
    accuracy TEXT NOT NULL DEFAULT '{}',
    delegation TEXT NOT NULL DEFAULT '{}',
    thermal TEXT NOT NULL DEFAULT '{}',
    log TEXT NOT NULL DEFAULT '',
    outputs BLOB,
    PRIMARY KEY (run_id, serial, variant_sha256, delegate)
);
CREATE TABLE IF NOT EXISTS diagnoses (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    created REAL NOT NULL,
    data TEXT NOT NULL
);
"""


def _old_store(path, version: int) -> None:
    """An empty store of schema ``version`` (1: runs without pid; 2: no adb server)."""
    with sqlite3.connect(path) as raw:
        for statement in filter(str.strip, V2_SCHEMA.split(";")):
            if version == 1:
                statement = statement.replace("pid INTEGER", "").replace(
                    "harness_version TEXT NOT NULL,", "harness_version TEXT NOT NULL"
                )
            raw.execute(statement)
        raw.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))


def _version(path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]


def test_new_store_records_the_current_version(tmp_path):
    path = tmp_path / "r.db"
    with Store(path) as db:
        db.create_run({"model": "m"})
    assert _version(path) == str(SCHEMA_VERSION)


def test_newer_store_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "r.db"
    with Store(path) as db:
        run = db.create_run({"model": "m"})
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(99),))
    before = path.read_bytes()
    for create in (True, False):
        with pytest.raises(UsageError, match="newer harness .*schema 99"):
            Store(path, create=create)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as raw:  # the run is still there, untouched
        assert raw.execute("SELECT id FROM runs").fetchone()[0] == run


def test_older_store_is_migrated(tmp_path):
    """A version-1 store (runs without the pid column) opens, gains the column, keeps data."""
    path = tmp_path / "old.db"
    _old_store(path, 1)
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO runs (id, created, status, config, host, harness_version) "
            "VALUES ('r1', 1.0, 'complete', '{}', 'h', '0')"
        )
        assert "pid" not in {r[1] for r in raw.execute("PRAGMA table_info(runs)")}
    with Store(path, create=False) as db:
        assert db.run("r1")["status"] == "complete" and db.run("r1")["pid"] is None
    with sqlite3.connect(path) as raw:
        assert "pid" in {r[1] for r in raw.execute("PRAGMA table_info(runs)")}
    assert _version(path) == str(SCHEMA_VERSION)


def test_a_renamed_column_is_refused_on_open(tmp_path):
    path = tmp_path / "r.db"
    with Store(path) as db:
        db.create_run({"model": "m"})
    with sqlite3.connect(path) as raw:
        raw.execute("ALTER TABLE cells RENAME COLUMN latency TO latency_ms")
    with pytest.raises(UsageError, match="table cells lacks column latency"):
        Store(path)


@pytest.mark.parametrize("content", [b"", b"not sqlite at all\n"])
def test_read_only_commands_never_write_into_a_non_store(tmp_path, content):
    path = tmp_path / "r.db"
    path.write_bytes(content)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "report",
            "--store",
            str(path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "not a harness results store" in run.stderr
    assert len([ln for ln in run.stderr.splitlines() if ln.strip()]) == 1
    assert path.read_bytes() == content
    assert not (tmp_path / "r.db-wal").exists() and not (tmp_path / "o").exists()


def test_another_sqlite_database_is_not_taken_over(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (text TEXT)")
    for create in (True, False):
        with pytest.raises(UsageError, match="no meta table"):
            Store(path, create=create)
    with sqlite3.connect(path) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    assert tables == {"notes"}


def test_a_version_2_store_is_migrated_to_device_identity_with_server(tmp_path):
    """Schema 3 keys devices and cells by (adb server, serial). A v2 store's rows keep every
    value and get the server "unknown" (v2 recorded none); readers match them by serial."""
    import json

    from harness.cell import Cell, DeviceId, Status
    from harness.devices.identity import UNKNOWN_SERVER
    from harness.report.data import load_run

    path = tmp_path / "v2.db"
    _old_store(path, 2)
    latency = {"avg_ms": 2.5, "p95_ms": None, "ci95_ms": [2.4, 2.6], "runner": "shell"}
    config = {"devices": ["emulator-5554"], "delegates": ["cpu", "gpu"],
              "variants": [{"id": "v", "sha256": "s"}]}  # fmt: skip
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO runs (id, created, status, config, host, harness_version, pid) "
            "VALUES ('r1', 1.0, 'partial', ?, 'h', '0', NULL)",
            (json.dumps(config),),
        )
        raw.execute(
            "INSERT INTO devices VALUES ('r1', 'emulator-5554', 'SM-G973F', 1, '{\"soc\": \"x\"}')"
        )
        raw.execute(
            "INSERT INTO cells (run_id, serial, variant_sha256, variant_id, delegate, status, "
            "reason, started, finished, latency, accuracy, outputs) "
            "VALUES ('r1', 'emulator-5554', 's', 'v', 'cpu', 'ok', '', 1, 2, ?, "
            "'{\"signature\": \"ok\"}', x'00ff')",
            (json.dumps(latency),),
        )
        raw.execute(
            "INSERT INTO cells (run_id, serial, variant_sha256, variant_id, delegate, status, "
            "reason, started, finished) "
            "VALUES ('r1', 'emulator-5554', 's', 'v', 'gpu', 'failed', 'device lost: x', 1, 2)"
        )
    with Store(path) as db:
        cpu, gpu = db.cells("r1")
        assert _version(path) == "3"
        legacy = DeviceId(UNKNOWN_SERVER, "emulator-5554")
        assert cpu.device == gpu.device == legacy and db.devices("r1")[0]["id"] == legacy
        assert cpu.latency.avg_ms == 2.5 and cpu.latency.to_json() == latency  # all kept
        assert db.outputs("r1", cpu.key) == b"\x00\xff" and cpu.has_outputs
        assert gpu.status is Status.FAILED and gpu.reason == "device lost: x"
        run = load_run(db, "r1")
        assert [c.device_model for c in run.cells] == ["SM-G973F"] * 2 and not run.missing
        # Resuming the run re-measures the failed cell through a known server: it replaces
        # the unknown-server attempt instead of standing beside it.
        again = DeviceId("127.0.0.1:5037", "emulator-5554")
        from dataclasses import replace

        db.record_cell(replace(gpu, device=again, status=Status.MEASURED, reason=""))
        cells = db.cells("r1")
        assert [(c.delegate, c.server) for c in cells] == [
            ("cpu", UNKNOWN_SERVER),
            ("gpu", "127.0.0.1:5037"),
        ]
        assert all(c.measured for c in cells) and isinstance(cells[0], Cell)
    with sqlite3.connect(path) as raw:
        keys = [r[1] for r in raw.execute("PRAGMA table_info(cells)") if r[5]]
        assert keys == ["run_id", "server", "serial", "variant_sha256", "delegate"]


def test_two_servers_listing_one_serial_are_two_devices(tmp_path):
    from harness.cell import Cell, DeviceId, Latency

    a, b = DeviceId("10.0.0.1:5037", "emulator-5554"), DeviceId("10.0.0.2:5037", "emulator-5554")
    with Store(tmp_path / "r.db") as db:
        run = db.create_run({})
        for n, device in enumerate((a, b)):
            db.add_device(run, device, "SM-G973F", True, {})
            db.record_cell(Cell(run, device, "s", "v", "cpu", latency=Latency(avg_ms=n + 1.0)))
        assert [(c.device, c.latency.avg_ms) for c in db.cells(run)] == [(a, 1.0), (b, 2.0)]
        assert [d["id"] for d in db.devices(run)] == [a, b]
