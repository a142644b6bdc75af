"""A run whose bench process was killed (kill -9, a crash) reads as interrupted, not running."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from harness.store import Store


def test_run_of_a_dead_process_reads_interrupted(tmp_path):
    path = tmp_path / "r.db"
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from harness.store import Store;"
            f"print(Store({str(path)!r}).create_run({{}}), flush=True); os._exit(9)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    run_id = killed.stdout.strip()
    with Store(path) as store:
        mine = store.create_run({})
        assert store.run(mine)["status"] == "running"  # this process is alive
        assert store.run(run_id)["status"] == "interrupted"
        assert {r["id"]: r["status"] for r in store.runs()} == {
            run_id: "interrupted",
            mine: "running",
        }
        store.finish_run(mine, "complete")
        assert store.run(mine)["status"] == "complete"


def test_store_from_before_pids_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, created REAL NOT NULL, finished REAL, "
            "status TEXT NOT NULL, config TEXT NOT NULL, host TEXT NOT NULL, "
            "harness_version TEXT NOT NULL)"
        )
        db.execute("INSERT INTO runs VALUES ('old', 0, NULL, 'running', '{}', 'h', '0.0.1')")
    with Store(path) as store:
        assert store.run("old")["status"] == "running"  # unknown process: left as it was
        assert store.run("old")["pid"] is None
        assert store.run(store.create_run({}))["status"] == "running"
