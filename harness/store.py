"""The results store: SQLite (``results/harness.db`` by default).

Everything a run measures is written as each cell finishes, in its own transaction, so an
interrupted run loses nothing and ``--resume RUN`` finishes the rest. WAL journal mode lets
several processes write one store safely (SQLite serializes writers; readers never block).
Only parameterized SQL is used.

``meta.schema_version`` is checked on open: a store from a newer harness is refused (one line,
exit 2) before anything is measured, an older one is migrated (:mod:`harness.store_schema`),
and a store whose tables lack a column this harness writes is refused too. Cells are read and
written as :class:`harness.cell.Cell`; nothing outside this module runs SQL on a store. Commands that only read
(``Store(path, create=False)``) never write a schema into a file that is not a store.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from harness.cell import Accuracy, Cell, CellKey, Delegation, Latency, Status
from harness.devices.identity import UNKNOWN_SERVER, DeviceId
from harness.errors import UsageError
from harness.store_bulk import BulkTables
from harness.store_schema import (
    SCHEMA_STATEMENTS,
    SCHEMA_VERSION,
    columns,
    expected_columns,
    migrate,
)

__all__ = ["DEFAULT_STORE", "SCHEMA_VERSION", "Store", "encode_arrays"]

DEFAULT_STORE = Path("results") / "harness.db"
_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another to finish


def _cell_row(cell: Cell) -> tuple:
    c, dump = cell, partial(json.dumps, sort_keys=True)
    values = (c.latency.to_json(), c.accuracy.to_json(), c.delegation.to_json(), c.thermal)
    return (c.run_id, c.server, c.serial, c.variant_sha256, c.variant_id, c.delegate,
            c.status.value, c.reason, c.started, c.finished, *map(dump, values), c.log)  # fmt: skip


def _cell(row: tuple) -> Cell:
    run_id, server, serial, sha, variant_id, delegate, status, reason, started, finished = row[:10]
    latency, accuracy, delegation, thermal = (json.loads(v) for v in row[10:14])
    return Cell(
        run_id=run_id,
        device=DeviceId(server, serial),
        variant_sha256=sha,
        variant_id=variant_id,
        delegate=delegate,
        status=Status.MEASURED if status == Status.MEASURED.value else Status.FAILED,
        reason=reason,
        started=started,
        finished=finished,
        latency=Latency.from_json(latency),
        accuracy=Accuracy.from_json(accuracy),
        delegation=Delegation.from_json(delegation),
        thermal=thermal if isinstance(thermal, dict) else {},
        log=row[14],
        has_outputs=bool(row[15]),
    )


def _gone(host: str, pid: int | None) -> bool:
    """The process that ran a bench on this host has ended (a run on another host, or from
    before runs recorded their process, cannot be checked: it stays ``running``)."""
    if not pid or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def encode_arrays(arrays: dict[str, Any]) -> bytes:
    """An ``.npz`` (``np.load`` reads it) whose integer and boolean arrays (masks) are
    deflated and whose float arrays are stored: model outputs barely compress (~20%) and
    deflating them cost ~40 ms per bench cell, a third of the harness's own time per cell.
    ``device_raw`` holds output bytes (float or int8 values), so it is stored too."""
    import io
    import zipfile

    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, value in arrays.items():
            array = np.asanyarray(value)
            small = array.dtype.kind in "biu" and not name.endswith("_raw")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if small else zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buf.getvalue()


class Store(BulkTables):
    def __init__(self, path: str | os.PathLike = DEFAULT_STORE, create: bool = True) -> None:
        """Open (``create``: or create) a results store. UsageError for a file that is not
        one, or one written by a newer harness."""
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UsageError(f"{self.path}: no results store; run harness bench first")
        if not create and self.path.stat().st_size == 0:
            raise UsageError(f"{self.path}: not a harness results store (empty file)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, isolation_level=None)
            tables = self._tables()
            if tables and not tables & {"meta", "runs"}:  # runs: a store from before meta
                raise UsageError(f"{self.path}: not a harness results store (no meta table)")
            if not tables and not create:
                raise UsageError(f"{self.path}: not a harness results store (no tables)")
            self._enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                self._prepare()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise UsageError(f"{self.path}: not a harness results store ({exc})") from exc
        except UsageError:
            self.db.close()
            raise

    def _tables(self) -> set[str]:
        rows = self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {r[0] for r in rows}

    def _prepare(self) -> None:
        """Inside a transaction: create a new store, check the version, migrate an older one,
        and make sure every column this harness writes is there."""
        fresh = not self._tables()
        for statement in SCHEMA_STATEMENTS:
            self.db.execute(statement)  # IF NOT EXISTS: adds only missing tables
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = SCHEMA_VERSION if fresh else int(row[0]) if row and row[0].isdigit() else 1
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.path}: written by a newer harness (store schema {version}, this harness "
                f"knows up to {SCHEMA_VERSION}): upgrade harness to use it"
            )
        if version < SCHEMA_VERSION:
            migrate(self.db, version)
        if row is None or row[0] != str(SCHEMA_VERSION):  # a store that is read is not written
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        for table, expected in expected_columns().items():
            if missing := sorted(expected - columns(self.db, table)):
                raise UsageError(
                    f"{self.path}: table {table} lacks column {missing[0]}: not a store this "
                    "harness can use (a newer or altered schema)"
                )

    def _enable_wal(self) -> None:
        """Switch to WAL (persistent once set). The switch needs the database to itself and
        SQLite may refuse it at once, without waiting on its busy handler, while other
        processes create the same store: retry for as long as a busy wait would last."""
        deadline = time.monotonic() + _BUSY_TIMEOUT
        delay = 0.01
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, config: dict[str, Any]) -> str:
        from harness import __version__

        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (id, created, status, config, host, harness_version, pid) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (
                    run_id,
                    time.time(),
                    json.dumps(config, sort_keys=True),
                    socket.gethostname(),
                    __version__,
                    os.getpid(),
                ),
            )
        return run_id

    def claim_run(self, run_id: str) -> None:
        """A resumed run is this process's now (status ``running``, this host and pid);
        DeviceBusy while the process that has it is alive."""
        from harness.errors import DeviceBusy

        with self.transaction() as db:
            row = db.execute("SELECT status, host, pid FROM runs WHERE id = ?", (run_id,))
            status, host, pid = row.fetchone()
            here = socket.gethostname()
            alive = host == here and pid and pid != os.getpid() and not _gone(host, pid)
            if status == "running" and alive:
                raise DeviceBusy(f"run {run_id} is still running (pid {pid})")
            db.execute(
                "UPDATE runs SET status = 'running', finished = NULL, host = ?, pid = ? "
                "WHERE id = ?",
                (here, os.getpid(), run_id),
            )

    def finish_run(self, run_id: str, status: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ? WHERE id = ?",
                (status, time.time(), run_id),
            )

    def run(self, run_id: str) -> dict:
        row = self.db.execute(
            "SELECT id, created, finished, status, config, host, harness_version, pid FROM runs "
            "WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        keys = ("id", "created", "finished", "status", "config", "host", "harness_version", "pid")
        data = dict(zip(keys, row, strict=True))
        data["config"] = json.loads(data["config"])
        if data["status"] == "running" and _gone(data["host"], data["pid"]):
            data["status"] = "interrupted"  # killed (kill -9, a crash): finish with --resume
        return data

    def runs(self) -> list[dict]:
        ids = [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY created")]
        return [self.run(i) for i in ids]

    def resolve_run(self, ref: str | None) -> str:
        """A run id, a tag, or None for the latest run."""
        if ref is None:
            row = self.db.execute("SELECT id FROM runs ORDER BY created DESC LIMIT 1").fetchone()
            if row is None:
                raise UsageError(f"{self.path} holds no runs yet; run harness bench first")
            return row[0]
        row = self.db.execute("SELECT id FROM runs WHERE id = ?", (ref,)).fetchone()
        if row is None:
            row = self.db.execute("SELECT run_id FROM tags WHERE name = ?", (ref,)).fetchone()
        if row is None:
            raise UsageError(f"no run or tag {ref!r} in {self.path}")
        return row[0]

    def has_run(self, run_id: str) -> bool:
        return bool(self.db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone())

    def tagged(self, name: str) -> str | None:
        """The run the tag ``name`` names, or None."""
        row = self.db.execute("SELECT run_id FROM tags WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def tags(self, run_id: str) -> tuple[str, ...]:
        rows = self.db.execute("SELECT name FROM tags WHERE run_id = ? ORDER BY name", (run_id,))
        return tuple(r[0] for r in rows)

    def tag(self, run_id: str, name: str) -> None:
        self.run(run_id)
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO tags (name, run_id, created) VALUES (?, ?, ?)",
                (name, run_id, time.time()),
            )

    # -- devices and variants ------------------------------------------------------------------
    def add_device(
        self, run_id: str, device: DeviceId, model: str, virtual: bool, info: dict
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO devices (run_id, server, serial, model, virtual, info) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    device.server,
                    device.serial,
                    model,
                    int(virtual),
                    json.dumps(info, sort_keys=True),
                ),
            )

    def devices(self, run_id: str) -> list[dict]:
        """``{"id": DeviceId, "server", "serial", "model", "virtual", "info"}`` per device."""
        rows = self.db.execute(
            "SELECT server, serial, model, virtual, info FROM devices WHERE run_id = ? "
            "ORDER BY serial, server",
            (run_id,),
        )
        return [
            {
                "id": DeviceId(server, s),
                "server": server,
                "serial": s,
                "model": m,
                "virtual": bool(v),
                "info": json.loads(i),
            }
            for server, s, m, v, i in rows
        ]

    def add_variant(self, sha256: str, variant_id: str, model: str, spec: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO variants (sha256, variant_id, model, spec) "
                "VALUES (?, ?, ?, ?)",
                (sha256, variant_id, model, json.dumps(spec, sort_keys=True)),
            )

    def variant(self, sha256: str) -> dict | None:
        row = self.db.execute(
            "SELECT variant_id, model, spec FROM variants WHERE sha256 = ?", (sha256,)
        ).fetchone()
        if row is None:
            return None
        return {"sha256": sha256, "variant_id": row[0], "model": row[1], "spec": json.loads(row[2])}

    # -- eval sets -----------------------------------------------------------------------------
    def add_evalset(self, fingerprint: str, name: str, images, masks=None) -> None:
        import io

        import numpy as np

        buf = io.BytesIO()
        arrays = {"images": images} if masks is None else {"images": images, "masks": masks}
        np.savez_compressed(buf, **arrays)
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO evalsets (fingerprint, name, data) VALUES (?, ?, ?)",
                (fingerprint, name, buf.getvalue()),
            )

    def evalset(self, fingerprint: str):
        """(name, images, masks or None) of a stored eval set, or None."""
        import io

        import numpy as np

        row = self.db.execute(
            "SELECT name, data FROM evalsets WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        if row is None:
            return None
        with np.load(io.BytesIO(row[1]), allow_pickle=False) as data:
            masks = np.array(data["masks"]) if "masks" in data else None
            return row[0], np.array(data["images"]), masks

    # -- cells ---------------------------------------------------------------------------------
    def record_cell(self, cell: Cell, outputs: bytes | None = None) -> None:
        """Commit one finished (or failed) cell; replaces an earlier attempt of the same cell
        (one stored before its server was recorded included: a resumed migrated run)."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM cells WHERE run_id = ? AND server = ? AND serial = ? "
                "AND variant_sha256 = ? AND delegate = ?",
                (cell.run_id, UNKNOWN_SERVER, cell.serial, cell.variant_sha256, cell.delegate),
            )
            db.execute(
                "INSERT OR REPLACE INTO cells (run_id, server, serial, variant_sha256, "
                "variant_id, delegate, status, reason, started, finished, latency, accuracy, "
                "delegation, thermal, log, outputs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*_cell_row(cell), outputs),
            )

    def cells(self, run_id: str) -> list[Cell]:
        rows = self.db.execute(
            "SELECT run_id, server, serial, variant_sha256, variant_id, delegate, status, reason, "
            "started, finished, latency, accuracy, delegation, thermal, log, outputs IS NOT NULL "
            "FROM cells WHERE run_id = ? ORDER BY serial, variant_id, delegate, server",
            (run_id,),
        )
        return [_cell(r) for r in rows]

    def done_keys(self, run_id: str, only_measured: bool = False) -> set[CellKey]:
        query = "SELECT server, serial, variant_sha256, delegate FROM cells WHERE run_id = ?"
        params: tuple = (run_id,)
        if only_measured:
            query, params = query + " AND status = ?", (run_id, Status.MEASURED.value)
        rows = self.db.execute(query, params)
        return {CellKey(DeviceId(server, serial), sha, d) for server, serial, sha, d in rows}

    def outputs(self, run_id: str, key: CellKey) -> bytes | None:
        row = self.db.execute(
            "SELECT outputs FROM cells WHERE run_id = ? AND server = ? AND serial = ? "
            "AND variant_sha256 = ? AND delegate = ?",
            (run_id, key.device.server, key.device.serial, key.variant_sha256, key.delegate),
        ).fetchone()
        return row[0] if row else None

    # -- diagnoses -----------------------------------------------------------------------------
    def add_diagnosis(self, run_id: str, diagnosis: dict) -> None:
        """Store ``harness diagnose``'s result for its bench run (replaces an earlier one)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO diagnoses (run_id, created, data) VALUES (?, ?, ?)",
                (run_id, time.time(), json.dumps(diagnosis, sort_keys=True, allow_nan=False)),
            )

    def diagnosis(self, run_id: str) -> dict | None:
        """The diagnosis stored for ``run_id`` (docs/diagnose.md), or None."""
        row = self.db.execute("SELECT data FROM diagnoses WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None
