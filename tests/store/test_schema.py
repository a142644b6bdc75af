"""The store's schema version: newer refused, older migrated, non-stores left untouched."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from harness import store as store_mod
from harness.errors import UsageError
from harness.store import SCHEMA_VERSION, Store


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
    with sqlite3.connect(path) as raw:
        for statement in filter(str.strip, store_mod._SCHEMA.split(";")):
            raw.execute(
                statement.replace("pid INTEGER", "").replace(
                    "harness_version TEXT NOT NULL,", "harness_version TEXT NOT NULL"
                )
            )
        raw.execute("INSERT INTO meta VALUES ('schema_version', '1')")
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
