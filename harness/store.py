"""The results store: SQLite (``results/harness.db`` by default).

Everything a run measures is written as each cell finishes, in its own transaction, so an
interrupted run loses nothing and ``--resume RUN`` finishes the rest. WAL journal mode lets
several processes write one store safely (SQLite serializes writers; readers never block).
Only parameterized SQL is used.

``meta.schema_version`` is checked on open: a store from a newer harness is refused (one line,
exit 2) before anything is measured, an older one is migrated (:data:`_MIGRATIONS`), and a
store whose tables lack a column this harness writes is refused too. Commands that only read
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError

DEFAULT_STORE = Path("results") / "harness.db"
_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another to finish
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,              -- running | complete | partial | interrupted
    config TEXT NOT NULL,              -- JSON: the plan (devices, variants, delegates, counts)
    host TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    pid INTEGER                        -- the bench process (a dead one: the run was killed)
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
    info TEXT NOT NULL,                -- JSON DeviceInfo snapshot
    PRIMARY KEY (run_id, serial)
);
CREATE TABLE IF NOT EXISTS variants (
    sha256 TEXT PRIMARY KEY,
    variant_id TEXT NOT NULL,
    model TEXT NOT NULL,
    spec TEXT NOT NULL                 -- JSON manifest entry (or inferred spec)
);
CREATE TABLE IF NOT EXISTS evalsets (
    fingerprint TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    data BLOB NOT NULL                 -- compressed npz: images uint8 [N,H,W,C], masks [N,H,W]
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs(id),
    serial TEXT NOT NULL,
    variant_sha256 TEXT NOT NULL,
    variant_id TEXT NOT NULL,
    delegate TEXT NOT NULL,
    status TEXT NOT NULL,              -- ok | failed
    reason TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL NOT NULL,
    latency TEXT NOT NULL DEFAULT '{}',
    accuracy TEXT NOT NULL DEFAULT '{}',
    delegation TEXT NOT NULL DEFAULT '{}',
    thermal TEXT NOT NULL DEFAULT '{}',
    log TEXT NOT NULL DEFAULT '',
    outputs BLOB,                      -- npz of pulled outputs, see encode_arrays (may be NULL)
    PRIMARY KEY (run_id, serial, variant_sha256, delegate)
);
CREATE TABLE IF NOT EXISTS diagnoses (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    created REAL NOT NULL,
    data TEXT NOT NULL                 -- JSON: harness diagnose's diagnosis (docs/diagnose.md)
);
"""

# Bulk per-cell measurements (issue 18), additive: tables a store lacks are created on open;
# the schema version is unchanged. Keyed like cells; written by Store.record_op_profile and
# Store.record_sustain, read by Store.op_profile and Store.sustain.
_PERF_SCHEMA = """
CREATE TABLE IF NOT EXISTS op_profiles (
    run_id TEXT NOT NULL REFERENCES runs(id),
    serial TEXT NOT NULL,
    variant_sha256 TEXT NOT NULL,
    delegate TEXT NOT NULL,
    seq INTEGER NOT NULL,              -- Run Order position
    node_type TEXT NOT NULL,           -- SOFTMAX, CONV_2D, TfLiteGpuDelegateV2 (one row), ...
    name TEXT NOT NULL,
    first_ms REAL,
    avg_ms REAL NOT NULL,
    pct REAL,
    mem_kb REAL,
    times_called INTEGER,
    on_cpu INTEGER NOT NULL,           -- 1: an op a GPU/NNAPI cell left on the CPU
    delegate_node INTEGER NOT NULL,    -- 1: a delegate kernel (opaque: one row)
    PRIMARY KEY (run_id, serial, variant_sha256, delegate, seq)
);
CREATE TABLE IF NOT EXISTS sustain_samples (
    run_id TEXT NOT NULL REFERENCES runs(id),
    serial TEXT NOT NULL,
    variant_sha256 TEXT NOT NULL,
    delegate TEXT NOT NULL,
    seq INTEGER NOT NULL,
    t_s REAL NOT NULL,                 -- seconds since the sustained run started
    latency_ms REAL,                   -- mean latency of the slice ending at t_s
    temp_c REAL,                       -- hottest thermal zone
    cpu_khz REAL,                      -- highest cpufreq scaling_cur_freq
    gpu_khz REAL,                      -- GPU frequency (kHz) where the phone exposes it
    PRIMARY KEY (run_id, serial, variant_sha256, delegate, seq)
);
"""
_SCHEMA += _PERF_SCHEMA

# Migrations of older stores, each applied where its column is missing. Schema 2 added
# runs.pid (version 1 stores written before it lack it).
_ADDED_COLUMNS = ("ALTER TABLE runs ADD COLUMN pid INTEGER",)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM pragma_table_info(?)", (table,))}


def _expected_columns() -> dict[str, set[str]]:
    """The columns of every table, as this harness creates them."""
    db = sqlite3.connect(":memory:")
    try:
        for statement in filter(str.strip, _SCHEMA.split(";")):
            db.execute(statement)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: _columns(db, t) for t in tables}
    finally:
        db.close()


@dataclass(frozen=True)
class CellKey:
    serial: str
    variant_sha256: str
    delegate: str


@dataclass(frozen=True)
class CellRecord:
    run_id: str
    serial: str
    variant_sha256: str
    variant_id: str
    delegate: str
    status: str
    reason: str
    started: float
    finished: float
    latency: dict
    accuracy: dict
    delegation: dict
    thermal: dict
    log: str

    @property
    def key(self) -> CellKey:
        return CellKey(self.serial, self.variant_sha256, self.delegate)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


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


class Store:
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
        for statement in filter(str.strip, _SCHEMA.split(";")):
            self.db.execute(statement)  # IF NOT EXISTS: adds only missing tables
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = SCHEMA_VERSION if fresh else int(row[0]) if row and row[0].isdigit() else 1
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.path}: written by a newer harness (store schema {version}, this harness "
                f"knows up to {SCHEMA_VERSION}): upgrade harness to use it"
            )
        if version < SCHEMA_VERSION:
            for statement in _ADDED_COLUMNS:
                _, _, table, _, _, column, *_ = statement.split()
                if column not in _columns(self.db, table):
                    self.db.execute(statement)
        if row is None or row[0] != str(SCHEMA_VERSION):  # a store that is read is not written
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        for table, columns in _expected_columns().items():
            if missing := sorted(columns - _columns(self.db, table)):
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

    def tag(self, run_id: str, name: str) -> None:
        self.run(run_id)
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO tags (name, run_id, created) VALUES (?, ?, ?)",
                (name, run_id, time.time()),
            )

    # -- devices and variants ------------------------------------------------------------------
    def add_device(self, run_id: str, serial: str, model: str, virtual: bool, info: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO devices (run_id, serial, model, virtual, info) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, serial, model, int(virtual), json.dumps(info, sort_keys=True)),
            )

    def devices(self, run_id: str) -> list[dict]:
        rows = self.db.execute(
            "SELECT serial, model, virtual, info FROM devices WHERE run_id = ? ORDER BY serial",
            (run_id,),
        )
        return [
            {"serial": s, "model": m, "virtual": bool(v), "info": json.loads(i)}
            for s, m, v, i in rows
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
    def record_cell(self, cell: CellRecord, outputs: bytes | None = None) -> None:
        """Commit one finished (or failed) cell; replaces an earlier attempt of the same cell."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO cells (run_id, serial, variant_sha256, variant_id, "
                "delegate, status, reason, started, finished, latency, accuracy, delegation, "
                "thermal, log, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cell.run_id,
                    cell.serial,
                    cell.variant_sha256,
                    cell.variant_id,
                    cell.delegate,
                    cell.status,
                    cell.reason,
                    cell.started,
                    cell.finished,
                    json.dumps(cell.latency, sort_keys=True),
                    json.dumps(cell.accuracy, sort_keys=True),
                    json.dumps(cell.delegation, sort_keys=True),
                    json.dumps(cell.thermal, sort_keys=True),
                    cell.log,
                    outputs,
                ),
            )

    def cells(self, run_id: str) -> list[CellRecord]:
        rows = self.db.execute(
            "SELECT run_id, serial, variant_sha256, variant_id, delegate, status, reason, started, "
            "finished, latency, accuracy, delegation, thermal, log FROM cells WHERE run_id = ? "
            "ORDER BY serial, variant_id, delegate",
            (run_id,),
        )
        return [
            CellRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                json.loads(r[9]),
                json.loads(r[10]),
                json.loads(r[11]),
                json.loads(r[12]),
                r[13],
            )
            for r in rows
        ]

    def done_keys(self, run_id: str, only_ok: bool = False) -> set[CellKey]:
        query = "SELECT serial, variant_sha256, delegate FROM cells WHERE run_id = ?"
        if only_ok:
            query += " AND status = 'ok'"
        return {CellKey(*row) for row in self.db.execute(query, (run_id,))}

    def outputs(self, run_id: str, key: CellKey) -> bytes | None:
        row = self.db.execute(
            "SELECT outputs FROM cells WHERE run_id = ? AND serial = ? AND variant_sha256 = ? "
            "AND delegate = ?",
            (run_id, key.serial, key.variant_sha256, key.delegate),
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

    # -- per-cell bulk measurements (op profiles, sustained runs) --------------------------------
    _OP_COLUMNS = ("seq", "node_type", "name", "first_ms", "avg_ms", "pct", "mem_kb",
                   "times_called", "on_cpu", "delegate_node")  # fmt: skip
    _SUSTAIN_COLUMNS = ("seq", "t_s", "latency_ms", "temp_c", "cpu_khz", "gpu_khz")

    def _replace_rows(self, table: str, columns, run_id: str, key: CellKey, rows) -> None:
        where = "run_id = ? AND serial = ? AND variant_sha256 = ? AND delegate = ?"
        ident = (run_id, key.serial, key.variant_sha256, key.delegate)
        names = ", ".join(("run_id", "serial", "variant_sha256", "delegate", *columns))
        marks = ", ".join("?" * (4 + len(columns)))
        with self.transaction() as db:
            db.execute(f"DELETE FROM {table} WHERE {where}", ident)  # noqa: S608 - fixed names
            db.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                [ident + tuple(r.get(c) for c in columns) for r in rows],
            )

    def _rows(self, table: str, columns, run_id: str, key: CellKey) -> list[dict]:
        rows = self.db.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ? AND serial = ? "  # noqa: S608
            "AND variant_sha256 = ? AND delegate = ? ORDER BY seq",
            (run_id, key.serial, key.variant_sha256, key.delegate),
        )
        return [dict(zip(columns, r, strict=True)) for r in rows]

    def record_op_profile(self, run_id: str, key: CellKey, rows: list[dict]) -> None:
        """A cell's op-profile rows (harness.bench.profile_ops.rows); replaces earlier ones."""
        self._replace_rows("op_profiles", self._OP_COLUMNS, run_id, key, rows)

    def op_profile(self, run_id: str, key: CellKey) -> list[dict]:
        rows = self._rows("op_profiles", self._OP_COLUMNS, run_id, key)
        for r in rows:
            r["on_cpu"], r["delegate_node"] = bool(r["on_cpu"]), bool(r["delegate_node"])
        return rows

    def record_sustain(self, run_id: str, key: CellKey, samples: list[dict]) -> None:
        """A cell's sustained-run time series (harness.bench.sustain); replaces earlier ones."""
        self._replace_rows("sustain_samples", self._SUSTAIN_COLUMNS, run_id, key, samples)

    def sustain(self, run_id: str, key: CellKey) -> list[dict]:
        return self._rows("sustain_samples", self._SUSTAIN_COLUMNS, run_id, key)
