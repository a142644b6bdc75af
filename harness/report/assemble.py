"""Everything one report shows: the runs, the baseline, the comparisons, the overlay samples.

:func:`load_report` does all the reading; the renderers (HTML, Markdown, JSON, JUnit) take the
:class:`ReportData` it returns and never touch the store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.cell import CellKey
from harness.report.compare import Comparison, compare_runs
from harness.report.data import (
    ReportCell,
    RunData,
    Sample,
    load_evalset_images,
    load_run,
    load_samples,
)
from harness.report.sections_perf import PerfData, load_perf
from harness.store import Store

JSON_SCHEMA = 1


@dataclass(frozen=True, eq=False)
class ReportData:
    runs: tuple[RunData, ...]
    baseline: RunData | None = None
    comparisons: tuple[Comparison, ...] = ()
    samples: dict[tuple[str, CellKey], list[Sample]] = field(default_factory=dict)
    diagnoses: dict[str, dict] = field(default_factory=dict)  # run id -> harness diagnose JSON
    perf: dict[str, PerfData] = field(default_factory=dict)  # run id -> sections_perf data

    @property
    def any_virtual(self) -> bool:
        runs = self.runs + ((self.baseline,) if self.baseline else ())
        return any(r.any_virtual for r in runs)

    @property
    def virtual_models(self) -> list[str]:
        return sorted({d.model for r in self.runs for d in r.devices if d.virtual})

    def comparison(self, run: RunData) -> Comparison | None:
        return next((c for c in self.comparisons if c.run.id == run.id), None)

    def samples_of(self, cell: ReportCell) -> list[Sample]:
        return self.samples.get((cell.run_id, cell.key), [])

    @property
    def title(self) -> str:
        return "harness report: " + ", ".join(r.label for r in self.runs)


def load_report(
    store: Store,
    refs: Sequence[str] | None = None,
    baseline: str | None = None,
    with_samples: bool = True,
) -> ReportData:
    """Runs by id or tag (none: the latest run), compared with ``baseline`` (id or tag)."""
    runs: list[RunData] = []
    for ref in list(refs or []) or [None]:
        run = load_run(store, ref)
        if all(r.id != run.id for r in runs):
            runs.append(run)
    base = load_run(store, baseline) if baseline else None
    comparisons = tuple(compare_runs(r, base) for r in runs if base and r.id != base.id)
    samples: dict[tuple[str, CellKey], list[Sample]] = {}
    if with_samples:
        for run in runs:
            failing = [c for c in run.failing if c.has_outputs]
            if not failing:
                continue
            images = load_evalset_images(store, run)
            for cell in failing:
                samples[(cell.run_id, cell.key)] = load_samples(store, run, cell, images)
    diagnoses = {r.id: d for r in runs if (d := store.diagnosis(r.id)) is not None}
    perf = {r.id: p for r in runs if not (p := load_perf(store, r)).empty}
    return ReportData(tuple(runs), base, comparisons, samples, diagnoses, perf)


def _finite(value):
    """JSON has no NaN/Infinity: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def report_json(report: ReportData) -> dict:
    from harness import __version__

    return _finite(
        {
            "schema": JSON_SCHEMA,
            "generator": f"harness {__version__}",
            "virtual": report.any_virtual,
            "runs": [r.to_json() for r in report.runs],
            "baseline": report.baseline.to_json() if report.baseline else None,
            "comparisons": [c.to_json() for c in report.comparisons],
            "diagnoses": report.diagnoses,
            "perf": {run_id: p.to_json() for run_id, p in report.perf.items()},
        }
    )


def render_json(report: ReportData) -> str:
    return json.dumps(report_json(report), indent=2, sort_keys=True, allow_nan=False) + "\n"
