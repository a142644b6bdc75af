"""The store's bulk per-cell tables: ``op_profiles`` (``harness bench --profile-ops``) and
``sustain_samples`` (``--sustain``), keyed like cells (docs/results-schema.md). A mixin of
:class:`harness.store.Store`: it uses the store's connection and transactions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.cell import CellKey


class BulkTables:
    # -- per-cell bulk measurements (op profiles, sustained runs) --------------------------------
    # Literal SQL per table (tests/reliability/test_security.py: no SQL text built at run time).
    _OP_COLUMNS = ("seq", "node_type", "name", "first_ms", "avg_ms", "pct", "mem_kb",
                   "times_called", "on_cpu", "delegate_node")  # fmt: skip
    _SUSTAIN_COLUMNS = ("seq", "t_s", "latency_ms", "temp_c", "cpu_khz", "gpu_khz")

    @staticmethod
    def _ident(run_id: str, key: CellKey) -> tuple:
        return (run_id, key.device.server, key.device.serial, key.variant_sha256, key.delegate)

    def record_op_profile(self, run_id: str, key: CellKey, rows: list[dict]) -> None:
        """A cell's op-profile rows (harness.bench.profile_ops.rows); replaces earlier ones."""
        ident = self._ident(run_id, key)
        with self.transaction() as db:
            db.execute(
                "DELETE FROM op_profiles WHERE run_id = ? AND server = ? AND serial = ? "
                "AND variant_sha256 = ? AND delegate = ?",
                ident,
            )
            db.executemany(
                "INSERT INTO op_profiles (run_id, server, serial, variant_sha256, delegate, seq, "
                "node_type, name, first_ms, avg_ms, pct, mem_kb, times_called, on_cpu, "
                "delegate_node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [ident + tuple(r.get(c) for c in self._OP_COLUMNS) for r in rows],
            )

    def op_profile(self, run_id: str, key: CellKey) -> list[dict]:
        found = self.db.execute(
            "SELECT seq, node_type, name, first_ms, avg_ms, pct, mem_kb, times_called, on_cpu, "
            "delegate_node FROM op_profiles WHERE run_id = ? AND server = ? AND serial = ? "
            "AND variant_sha256 = ? AND delegate = ? ORDER BY seq",
            self._ident(run_id, key),
        )
        rows = [dict(zip(self._OP_COLUMNS, r, strict=True)) for r in found]
        for r in rows:
            r["on_cpu"], r["delegate_node"] = bool(r["on_cpu"]), bool(r["delegate_node"])
        return rows

    def record_sustain(self, run_id: str, key: CellKey, samples: list[dict]) -> None:
        """A cell's sustained-run time series (harness.bench.sustain); replaces earlier ones."""
        ident = self._ident(run_id, key)
        with self.transaction() as db:
            db.execute(
                "DELETE FROM sustain_samples WHERE run_id = ? AND server = ? AND serial = ? "
                "AND variant_sha256 = ? AND delegate = ?",
                ident,
            )
            db.executemany(
                "INSERT INTO sustain_samples (run_id, server, serial, variant_sha256, delegate, "
                "seq, t_s, latency_ms, temp_c, cpu_khz, gpu_khz) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [ident + tuple(r.get(c) for c in self._SUSTAIN_COLUMNS) for r in samples],
            )

    def sustain(self, run_id: str, key: CellKey) -> list[dict]:
        found = self.db.execute(
            "SELECT seq, t_s, latency_ms, temp_c, cpu_khz, gpu_khz FROM sustain_samples "
            "WHERE run_id = ? AND server = ? AND serial = ? AND variant_sha256 = ? "
            "AND delegate = ? ORDER BY seq",
            self._ident(run_id, key),
        )
        return [dict(zip(self._SUSTAIN_COLUMNS, r, strict=True)) for r in found]
