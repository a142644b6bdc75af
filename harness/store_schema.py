"""The results store's SQL schema and its migrations (docs/results-schema.md).

:data:`SCHEMA` creates a store of version :data:`SCHEMA_VERSION`; :func:`migrate` brings an
older one up to it inside the caller's transaction. Only :mod:`harness.store` uses this.
"""

from __future__ import annotations

import sqlite3

from harness.devices.identity import UNKNOWN_SERVER

SCHEMA_VERSION = 3

SCHEMA = """
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
    server TEXT NOT NULL,              -- HOST:PORT of the adb server ('unknown': schema < 3)
    serial TEXT NOT NULL,
    model TEXT NOT NULL,
    virtual INTEGER NOT NULL,
    info TEXT NOT NULL,                -- JSON DeviceInfo snapshot
    PRIMARY KEY (run_id, server, serial)
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
    server TEXT NOT NULL,              -- with serial: the device (harness.devices.identity)
    serial TEXT NOT NULL,
    variant_sha256 TEXT NOT NULL,
    variant_id TEXT NOT NULL,
    delegate TEXT NOT NULL,
    status TEXT NOT NULL,              -- ok (measured) | failed
    reason TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL NOT NULL,
    latency TEXT NOT NULL DEFAULT '{}',
    accuracy TEXT NOT NULL DEFAULT '{}',
    delegation TEXT NOT NULL DEFAULT '{}',
    thermal TEXT NOT NULL DEFAULT '{}',
    log TEXT NOT NULL DEFAULT '',
    outputs BLOB,                      -- npz of pulled outputs, see encode_arrays (may be NULL)
    PRIMARY KEY (run_id, server, serial, variant_sha256, delegate)
);
CREATE TABLE IF NOT EXISTS diagnoses (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    created REAL NOT NULL,
    data TEXT NOT NULL                 -- JSON: harness diagnose's diagnosis (docs/diagnose.md)
);
-- Bulk per-cell measurements (issue 18), keyed like cells: Store.record_op_profile /
-- Store.op_profile and Store.record_sustain / Store.sustain.
CREATE TABLE IF NOT EXISTS op_profiles (
    run_id TEXT NOT NULL REFERENCES runs(id),
    server TEXT NOT NULL,
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
    PRIMARY KEY (run_id, server, serial, variant_sha256, delegate, seq)
);
CREATE TABLE IF NOT EXISTS sustain_samples (
    run_id TEXT NOT NULL REFERENCES runs(id),
    server TEXT NOT NULL,
    serial TEXT NOT NULL,
    variant_sha256 TEXT NOT NULL,
    delegate TEXT NOT NULL,
    seq INTEGER NOT NULL,
    t_s REAL NOT NULL,                 -- seconds since the sustained run started
    latency_ms REAL,                   -- mean latency of the slice ending at t_s
    temp_c REAL,                       -- hottest thermal zone
    cpu_khz REAL,                      -- highest cpufreq scaling_cur_freq
    gpu_khz REAL,                      -- GPU frequency (kHz) where the phone exposes it
    PRIMARY KEY (run_id, server, serial, variant_sha256, delegate, seq)
);
"""


SCHEMA_STATEMENTS = tuple(s for s in SCHEMA.split(";") if s.strip())

# Schema 3: ``server`` joins the primary keys of devices and cells. SQLite cannot alter a key:
# each table is renamed, created anew (SCHEMA_STATEMENTS) and filled from the old one. Schema 2
# recorded no server, so old rows get 'unknown' (identity.UNKNOWN_SERVER). Literal SQL only
# (tests/reliability/test_security.py checks that no SQL text is built from values).
_OLD_TABLES_V3 = (
    "ALTER TABLE devices RENAME TO devices_v2",
    "ALTER TABLE cells RENAME TO cells_v2",
)
_COPY_V3 = (
    "INSERT INTO devices (run_id, server, serial, model, virtual, info) "
    "SELECT run_id, 'unknown', serial, model, virtual, info FROM devices_v2",
    "INSERT INTO cells (run_id, server, serial, variant_sha256, variant_id, delegate, status, "
    "reason, started, finished, latency, accuracy, delegation, thermal, log, outputs) "
    "SELECT run_id, 'unknown', serial, variant_sha256, variant_id, delegate, status, reason, "
    "started, finished, latency, accuracy, delegation, thermal, log, outputs FROM cells_v2",
    "DROP TABLE devices_v2",
    "DROP TABLE cells_v2",
)
assert "'unknown'" in _COPY_V3[0] and UNKNOWN_SERVER == "unknown"


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM pragma_table_info(?)", (table,))}


def expected_columns() -> dict[str, set[str]]:
    """The columns of every table, as this harness creates them."""
    db = sqlite3.connect(":memory:")
    try:
        for statement in SCHEMA_STATEMENTS:
            db.execute(statement)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: columns(db, t) for t in tables}
    finally:
        db.close()


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a store of ``version`` up to :data:`SCHEMA_VERSION` (in the caller's transaction):
    1 -> 2 adds ``runs.pid``; 2 -> 3 adds ``server`` to the keys of ``devices`` and ``cells``
    (every row kept, server 'unknown')."""
    if version < 2 and "pid" not in columns(db, "runs"):
        db.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    if version < 3 and "server" not in columns(db, "cells"):
        for statement in _OLD_TABLES_V3:
            db.execute(statement)
        for statement in SCHEMA_STATEMENTS:  # IF NOT EXISTS: creates the two new tables
            db.execute(statement)
        for statement in _COPY_V3:
            db.execute(statement)
