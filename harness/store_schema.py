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
"""


def statements() -> list[str]:
    return [s for s in SCHEMA.split(";") if s.strip()]


def _create_statement(table: str) -> str:
    return next(s for s in statements() if f"EXISTS {table} (" in s)


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM pragma_table_info(?)", (table,))}


def expected_columns() -> dict[str, set[str]]:
    """The columns of every table, as this harness creates them."""
    db = sqlite3.connect(":memory:")
    try:
        for statement in statements():
            db.execute(statement)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: columns(db, t) for t in tables}
    finally:
        db.close()


def _add_server(db: sqlite3.Connection, table: str) -> None:
    """Schema 3: ``server`` joins the primary key of ``table`` (a rebuild: SQLite cannot alter
    a key). Rows from before record no server: they get :data:`UNKNOWN_SERVER`."""
    if "server" in columns(db, table):
        return
    old = [c for c in columns(db, table)]
    db.execute(f"ALTER TABLE {table} RENAME TO {table}_v2")
    db.execute(_create_statement(table))
    names = ", ".join(old)
    db.execute(
        f"INSERT INTO {table} (server, {names}) SELECT ?, {names} FROM {table}_v2",
        (UNKNOWN_SERVER,),
    )
    db.execute(f"DROP TABLE {table}_v2")


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a store of ``version`` up to :data:`SCHEMA_VERSION` (in the caller's transaction):
    1 -> 2 adds ``runs.pid``; 2 -> 3 adds ``server`` to the keys of ``devices`` and ``cells``."""
    if version < 2 and "pid" not in columns(db, "runs"):
        db.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    if version < 3:
        _add_server(db, "devices")
        _add_server(db, "cells")
