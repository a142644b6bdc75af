"""JUnit XML (the subset CI systems read: testsuites > testsuite > testcase > failure).

:func:`render_junit` is shared by ``harness report`` (one test case per cell, plus one per
cell compared with the baseline) and ``harness gate`` (one test case per check). Output is
deterministic: no timestamps, no host names, cases in the order given.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.report import formatting as fmt
from harness.report.assemble import ReportData


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    failure: str | None = None  # the failure message; None = passed
    kind: str = "failure"
    output: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Suite:
    name: str
    cases: Sequence[Case] = field(default_factory=tuple)
    properties: Sequence[tuple[str, str]] = ()


def _clean(text: str) -> str:
    """XML 1.0 forbids most control characters; logs can contain them."""
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def render_junit(name: str, suites: Sequence[Suite]) -> str:
    total = sum(len(s.cases) for s in suites)
    failures = sum(1 for s in suites for c in s.cases if c.failure is not None)
    root = ET.Element("testsuites", name=name, tests=str(total), failures=str(failures))
    for suite in suites:
        fails = sum(1 for c in suite.cases if c.failure is not None)
        el = ET.SubElement(
            root,
            "testsuite",
            name=_clean(suite.name),
            tests=str(len(suite.cases)),
            failures=str(fails),
            errors="0",
            skipped="0",
            time=f"{sum(c.seconds for c in suite.cases):.3f}",
        )
        if suite.properties:
            props = ET.SubElement(el, "properties")
            for key, value in suite.properties:
                ET.SubElement(props, "property", name=_clean(key), value=_clean(value))
        for case in suite.cases:
            tc = ET.SubElement(
                el,
                "testcase",
                classname=_clean(case.classname),
                name=_clean(case.name),
                time=f"{case.seconds:.3f}",
            )
            if case.failure is not None:
                failure = ET.SubElement(
                    tc, "failure", message=_clean(case.failure), type=_clean(case.kind)
                )
                failure.text = _clean(case.failure)
            if case.output:
                ET.SubElement(tc, "system-out").text = _clean(case.output)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _cell_output(cell) -> str:
    return (
        f"avg_ms={fmt.ms(cell.latency.avg_ms)} p95_ms={fmt.ms(cell.latency.p95_ms)} "
        f"spread={fmt.pct(cell.latency.spread_pct, signed=False)} init_ms={fmt.ms(cell.latency.init_ms)} "
        f"iou_ref={fmt.iou(cell.accuracy.reference.iou)} iou_gt={fmt.iou(cell.accuracy.gt.iou)} "
        f"nan_inf={fmt.count(cell.accuracy.reference.nonfinite)} signature={cell.accuracy.signature or '-'} "
        f"delegation={cell.delegation.verdict or '-'}" + (" VIRTUAL" if cell.virtual else "")
    )


def report_suites(report: ReportData) -> list[Suite]:
    suites = []
    for run in report.runs:
        cases = []
        for cell in run.cells:
            device = cell.device_model + (" [virtual]" if cell.virtual else "")
            failure = None
            if not cell.measured:
                failure, kind = cell.outcome.detail, "cell-failed"
            elif cell.outcome.failing:
                failure, kind = cell.outcome.detail, "wrong-output"
            else:
                kind = "failure"
            cases.append(
                Case(
                    classname=f"{device}.{cell.shown_serial}",
                    name=f"{cell.variant_id} {cell.delegate}",
                    failure=failure,
                    kind=kind,
                    output=_cell_output(cell),
                    seconds=max(0.0, cell.finished - cell.started),
                )
            )
        for missing in run.missing:
            device = missing.device_model + (" [virtual]" if missing.virtual else "")
            cases.append(
                Case(
                    classname=f"{device}.{missing.serial}",
                    name=f"{missing.variant_id} {missing.delegate}",
                    failure=f"not measured (run {run.status})",
                    kind="missing",
                )
            )
        props = [("run", run.id), ("status", run.status), ("virtual", str(run.any_virtual))]
        props += [("tag", t) for t in run.tags]
        suites.append(Suite(f"run {run.id}", cases, props))
        comparison = report.comparison(run)
        if comparison is None:
            continue
        cases = []
        for r in comparison.cells:
            avg = r.delta("avg_ms")
            failure = None
            if r.regressed:
                failure = "regressed: " + ", ".join(r.reasons)
            device = r.cell.device_model + (" [virtual]" if r.cell.virtual else "")
            cases.append(
                Case(
                    classname=f"{device}.{r.cell.serial}",
                    name=f"{r.cell.variant_id} {r.cell.delegate} vs baseline",
                    failure=failure,
                    kind="regression",
                    output=f"avg_ms {fmt.ms(avg.base)} -> {fmt.ms(avg.new)} ({fmt.pct(avg.pct)})",
                )
            )
        suites.append(
            Suite(
                f"run {run.id} vs baseline {comparison.baseline.id}",
                cases,
                [("baseline", comparison.baseline.id)]
                + [("baseline_tag", t) for t in comparison.baseline.tags],
            )
        )
    return suites


def render_report_junit(report: ReportData) -> str:
    return render_junit("harness report", report_suites(report))
