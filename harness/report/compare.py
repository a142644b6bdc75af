"""A run against a baseline run (a release tag): matched cells, deltas, regressions. Pure.

Cells are matched by (device, variant id, delegate). The device is the same serial when the
baseline has it; otherwise the same model code when each run has exactly one device of that
model (virtual phones get a new serial, ``127.0.0.1:PORT``, on every start). A virtual cell is
never compared with a real one: the numbers measure different machines.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.bench import stats
from harness.cell import METRICS as VALUES
from harness.report.data import ReportCell, RunData


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_worse: bool  # latency: yes; IoU: no
    relative: bool  # flag on % change (latency) or on absolute change (IoU)
    threshold: float  # % for relative metrics, absolute units otherwise


# What the report flags. Init time is noisy (GPU kernels compile), so it needs a bigger move.
METRICS: tuple[Metric, ...] = (
    Metric("avg_ms", "avg latency", True, True, 10.0),
    Metric("p95_ms", "p95 latency", True, True, 10.0),
    Metric("init_ms", "init time", True, True, 25.0),
    Metric("iou_ref", "IoU vs reference", False, False, 0.01),
    Metric("iou_gt", "IoU vs ground truth", False, False, 0.01),
)


def change_pct(new: float | None, base: float | None) -> float | None:
    """(new - base) / base x 100; None when either is missing or base is not positive."""
    if new is None or base is None or base <= 0:
        return None
    return (new - base) / base * 100.0


# Latency metrics judged with 95% intervals of the per-invocation values (harness.bench.stats):
# a change beyond the threshold is a regression only when the intervals separate.
INTERVAL_METRICS = ("avg_ms", "p95_ms", "init_ms")


@dataclass(frozen=True)
class Delta:
    metric: Metric
    base: float | None
    new: float | None
    decision: stats.Decision | None = None  # for INTERVAL_METRICS

    @property
    def change(self) -> float | None:
        if self.new is None or self.base is None:
            return None
        return self.new - self.base

    @property
    def pct(self) -> float | None:
        return change_pct(self.new, self.base)

    @property
    def _score(self) -> float | None:
        """The change in the metric's flagging unit, signed so that positive is worse."""
        value = self.pct if self.metric.relative else self.change
        if value is None:
            return None
        return value if self.metric.higher_is_worse else -value

    @property
    def regressed(self) -> bool:
        if self.decision is not None:
            return self.decision.regressed
        score = self._score
        return score is not None and score > self.metric.threshold

    @property
    def improved(self) -> bool:
        if self.decision is not None:
            return self.decision.verdict == stats.IMPROVEMENT
        score = self._score
        return score is not None and score < -self.metric.threshold

    @property
    def inconclusive(self) -> bool:
        """Beyond the threshold, but the intervals overlap (or one is missing)."""
        return self.decision is not None and self.decision.inconclusive

    def to_json(self) -> dict:
        return {
            "metric": self.metric.key,
            "base": self.base,
            "new": self.new,
            "change": self.change,
            "pct": self.pct,
            "threshold": self.metric.threshold,
            "threshold_unit": "%" if self.metric.relative else "abs",
            "regressed": self.regressed,
            "improved": self.improved,
            "decision": self.decision.verdict if self.decision else None,
            "decision_why": self.decision.why if self.decision else None,
            "base_ci95": self.decision.base.to_json()
            if self.decision and self.decision.base
            else None,
            "new_ci95": self.decision.new.to_json()
            if self.decision and self.decision.new
            else None,
        }


def _shown(cell: ReportCell) -> str:
    """A cell's state as the comparison names it: failed, or its stored signature."""
    return cell.status.value if not cell.measured else (cell.accuracy.signature or "ok")


@dataclass(frozen=True)
class CellComparison:
    cell: ReportCell
    base: ReportCell
    deltas: tuple[Delta, ...]

    @property
    def status_change(self) -> str:
        """``ok → failed`` or ``ok → nan`` style text when the cell got worse, else ''."""
        before, after = _shown(self.base), _shown(self.cell)
        return "" if before == after or after == "ok" else f"{before} → {after}"

    @property
    def regressed(self) -> bool:
        return bool(self.status_change) or any(d.regressed for d in self.deltas)

    @property
    def improved(self) -> bool:
        return not self.regressed and any(d.improved for d in self.deltas)

    @property
    def reasons(self) -> list[str]:
        """Why the cell is flagged: ``["avg latency +20.0%", "ok → nan"]``."""
        out = []
        for d in self.deltas:
            if d.regressed:
                change = f"{d.pct:+.1f}%" if d.metric.relative else f"{d.change:+.3f}"
                out.append(f"{d.metric.label} {change}")
        if self.status_change:
            out.append(self.status_change)
        return out

    @property
    def inconclusive(self) -> list[str]:
        """Changes beyond a threshold that the intervals cannot confirm: ``["avg latency
        +6.0% but the 95% intervals overlap (...)"]``."""
        return [f"{d.metric.label} {d.decision.why}" for d in self.deltas if d.inconclusive]

    @property
    def rebuilt(self) -> bool:
        return self.cell.variant_sha256 != self.base.variant_sha256

    def delta(self, key: str) -> Delta:
        return next(d for d in self.deltas if d.metric.key == key)

    def to_json(self) -> dict:
        return {
            "device_model": self.cell.device_model,
            "serial": self.cell.serial,
            "base_serial": self.base.serial,
            "virtual": self.cell.virtual,
            "variant_id": self.cell.variant_id,
            "delegate": self.cell.delegate,
            "variant_rebuilt": self.rebuilt,
            "status_change": self.status_change,
            "regressed": self.regressed,
            "reasons": self.reasons,
            "inconclusive": self.inconclusive,
            "improved": self.improved,
            "deltas": [d.to_json() for d in self.deltas],
        }


@dataclass(frozen=True)
class Comparison:
    run: RunData
    baseline: RunData
    cells: tuple[CellComparison, ...]
    only_in_run: tuple[ReportCell, ...]
    only_in_baseline: tuple[ReportCell, ...]
    not_comparable: tuple[tuple[ReportCell, str], ...]

    @property
    def regressions(self) -> list[CellComparison]:
        return [c for c in self.cells if c.regressed]

    @property
    def inconclusive(self) -> list[CellComparison]:
        return [c for c in self.cells if not c.regressed and c.inconclusive]

    @property
    def improvements(self) -> list[CellComparison]:
        return [c for c in self.cells if c.improved]

    def to_json(self) -> dict:
        return {
            "run": self.run.id,
            "baseline": self.baseline.id,
            "baseline_tags": list(self.baseline.tags),
            "thresholds": {
                m.key: {"value": m.threshold, "unit": "%" if m.relative else "abs"} for m in METRICS
            },
            "cells": [c.to_json() for c in self.cells],
            "regressions": len(self.regressions),
            "inconclusive": len(self.inconclusive),
            "regression_rule": "latency: beyond the threshold and 95% intervals separate "
            f"({stats.CI_METHOD}); else inconclusive",
            "improvements": len(self.improvements),
            "only_in_run": [c.label for c in self.only_in_run],
            "only_in_baseline": [c.label for c in self.only_in_baseline],
            "not_comparable": [{"cell": c.label, "why": why} for c, why in self.not_comparable],
        }


def _unique_models(run: RunData) -> set[str]:
    counts = Counter(d.model for d in run.devices)
    return {m for m, n in counts.items() if n == 1}


def match_cells(run: RunData, baseline: RunData) -> dict[ReportCell, ReportCell]:
    """Each cell of ``run`` with its counterpart in ``baseline`` (virtual-ness not checked)."""
    by_id = {(c.device, c.variant_id, c.delegate): c for c in baseline.cells}
    by_serial = {(c.serial, c.variant_id, c.delegate): c for c in baseline.cells}
    unique_base, unique_run = _unique_models(baseline), _unique_models(run)
    by_model = {
        (c.device_model, c.variant_id, c.delegate): c
        for c in baseline.cells
        if c.device_model in unique_base
    }
    matched: dict[ReportCell, ReportCell] = {}
    for cell in run.cells:
        base = by_id.get((cell.device, cell.variant_id, cell.delegate)) or by_serial.get(
            (cell.serial, cell.variant_id, cell.delegate)
        )
        if base is None and cell.device_model in unique_run:
            base = by_model.get((cell.device_model, cell.variant_id, cell.delegate))
        if base is not None:
            matched[cell] = base
    return matched


def compare_runs(run: RunData, baseline: RunData) -> Comparison:
    matched = match_cells(run, baseline)
    cells, not_comparable = [], []
    for cell, base in matched.items():
        if cell.virtual != base.virtual:
            kinds = ("virtual", "real") if cell.virtual else ("real", "virtual")
            not_comparable.append((cell, f"{kinds[0]} phone vs {kinds[1]} baseline"))
            continue
        deltas = tuple(_delta(m, base, cell) for m in METRICS)
        cells.append(CellComparison(cell, base, deltas))
    used = set(matched.values())
    return Comparison(
        run=run,
        baseline=baseline,
        cells=tuple(sorted(cells, key=lambda c: c.cell.sort_key)),
        only_in_run=tuple(c for c in run.cells if c not in matched),
        only_in_baseline=tuple(c for c in baseline.cells if c not in used),
        not_comparable=tuple(not_comparable),
    )


def _delta(m: Metric, base: ReportCell, cell: ReportCell) -> Delta:
    b, n = VALUES[m.key](base), VALUES[m.key](cell)
    if m.key not in INTERVAL_METRICS or b is None or n is None:
        return Delta(m, b, n)
    decision = stats.decide(
        b,
        n,
        stats.latency_interval(base.latency.to_json(), m.key),
        stats.latency_interval(cell.latency.to_json(), m.key),
        m.threshold,
    )
    return Delta(m, b, n, decision)
