"""The HTML report: one self-contained file (inline CSS, images as ``data:`` URIs, no scripts).

A Content-Security-Policy meta tag forbids every external resource, so a report that tried to
load one would show it as a console error. Every string from devices, models and logs goes
through Jinja2 autoescaping. Rows are sorted and the only times shown are the runs' own, so
the same store gives the same file.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.report import charts, overlays, sections_perf
from harness.report import formatting as fmt
from harness.report.assemble import ReportData
from harness.report.compare import METRICS, Comparison
from harness.report.data import RunData

TEMPLATES = Path(__file__).parent / "templates"
LOG_TAIL_LINES = 30
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        ms=fmt.ms,
        iou=fmt.iou,
        pct=fmt.pct,
        upct=lambda v: fmt.pct(v, signed=False),
        count=fmt.count,
        number=fmt.number,
        utc=fmt.utc,
    )
    return env


def anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _summary(run: RunData) -> list[tuple[str, str]]:
    cfg = run.config
    evalset = run.evalset
    failed = sum(1 for c in run.cells if not c.measured)
    wrong = sum(1 for c in run.cells if c.measured and c.outcome.failing)
    duration = (run.finished - run.created) if run.finished else None
    plan = (
        f"{fmt.number(cfg.get('runs'))} runs x {fmt.number(cfg.get('repeats'))} invocations, "
        f"{fmt.number(cfg.get('warmup'))} warmup, threads "
        f"{'default' if cfg.get('threads') is None else fmt.number(cfg.get('threads'))}"
    )
    rows = [
        ("status", run.status),
        ("created", fmt.utc(run.created)),
        ("finished", f"{fmt.utc(run.finished)} ({fmt.duration(duration)})"),
        ("model", run.model),
        (
            "eval set",
            f"{evalset.get('name', '?')}: {fmt.number(evalset.get('n'))} images"
            + (f" ({evalset['source']})" if evalset.get("source") else ""),
        ),
        ("plan", plan),
        (
            "cells",
            f"{len(run.cells)} measured: {len(run.cells) - failed - wrong} ok, {failed} failed, "
            f"{wrong} with wrong output; {len(run.missing)} not measured",
        ),
        ("host", f"{run.host}, harness {run.harness_version}"),
    ]
    sources = run.normalization_sources
    if sources:
        text = ", ".join(f"{v}: {s}" for v, s in sorted(sources.items()))
        rows.append(("input normalization", text))
    if run.warnings:
        rows.append(("warnings", "; ".join(run.warnings)))
    return rows


def _delegation_rows(run: RunData) -> list:
    return [c for c in run.cells if c.delegation.verdict not in (None, "none") or c.delegation.ops]


def _failing(report: ReportData, run: RunData) -> list[dict]:
    out = []
    for cell in run.failing:
        samples = []
        for sample in report.samples_of(cell):
            panels = overlays.overlay_panels(sample)
            if panels:
                samples.append({"index": sample.index, "iou": sample.iou, "panels": panels})
        log_tail = "\n".join(cell.log.splitlines()[-LOG_TAIL_LINES:])
        out.append({"cell": cell, "samples": samples, "log_tail": log_tail})
    return out


def _comparison_view(comparison: Comparison | None) -> dict | None:
    if comparison is None:
        return None
    rows = sorted(comparison.cells, key=lambda c: (not c.regressed, c.cell.sort_key))
    return {
        "comparison": comparison,
        "rows": rows,
        "metrics": METRICS,
    }


def _run_view(report: ReportData, run: RunData) -> dict:
    delegates = run.delegates
    sections = []
    for device in run.devices:
        cells = run.cells_of(device.id)
        sections.append(
            {
                "device": device,
                "anchor": anchor(f"{run.id}-{device.shown}"),
                "cells": cells,
                "chart": charts.latency_chart(device, cells, delegates),
            }
        )
    orphan = [c for c in run.cells if c.phone is None]
    heatmaps = [
        uri
        for uri in (
            charts.accuracy_heatmap(run, "iou_ref"),
            charts.accuracy_heatmap(run, "iou_gt"),
        )
        if uri
    ]
    return {
        "run": run,
        "anchor": anchor(f"run-{run.id}"),
        "summary": _summary(run),
        "sections": sections,
        "orphans": orphan,
        "heatmaps": heatmaps,
        "delegation": _delegation_rows(run),
        "failing": _failing(report, run),
        "comparison": _comparison_view(report.comparison(run)),
        "perf": sections_perf.html_view(report.perf.get(run.id)),
    }


def render_html(report: ReportData) -> str:
    from harness import __version__

    template = _environment().get_template("report.html.j2")
    return template.render(
        title=report.title,
        csp=CSP,
        report=report,
        runs=[_run_view(report, run) for run in report.runs],
        baseline=report.baseline,
        generator=f"harness {__version__}",
        panels=overlays.PANELS,
        legend=overlays.LEGEND,
    )
