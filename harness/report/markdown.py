"""The Markdown summary: short enough for a pull-request comment (GitHub-flavoured)."""

from __future__ import annotations

import html

from harness.report import formatting as fmt
from harness.report import sections_perf
from harness.report.assemble import ReportData
from harness.report.compare import Comparison
from harness.report.data import ReportCell, RunData

MAX_ROWS = 15  # rows of a problem table before "... and N more"


def md(text: object) -> str:
    """Escape text from devices and models for a Markdown table cell."""
    out = html.escape(str(text), quote=False)
    for ch in "\\`*_[]|#":
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())


def _device(cell: ReportCell) -> str:
    """The model; with ``SERIAL@SERVER`` when two adb servers list the cell's serial."""
    shown = f" {md(cell.shown_serial)}" if cell.shown_serial != cell.serial else ""
    return md(cell.device_model) + shown + (" **VIRTUAL**" if cell.virtual else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    shown = rows[:MAX_ROWS]
    lines += ["| " + " | ".join(r) + " |" for r in shown]
    if len(rows) > len(shown):
        lines.append(f"\n... and {len(rows) - len(shown)} more (see the HTML report)")
    return lines


def _run(run: RunData, comparison: Comparison | None) -> list[str]:
    tags = "".join(f" `{md(t)}`" for t in run.tags)
    virtual = " — **VIRTUAL**" if run.any_virtual else ""
    failed = [c for c in run.cells if not c.measured]
    wrong = [c for c in run.cells if c.measured and c.outcome.failing]
    ok = len(run.cells) - len(failed) - len(wrong)
    devices = ", ".join(md(d.model) + (" (virtual)" if d.virtual else "") for d in run.devices)
    lines = [
        f"### Run `{md(run.id)}`{tags} ({md(run.status)}){virtual}",
        "",
        f"Model **{md(run.model)}** on {devices or 'no device'}: {len(run.cells)} cells, "
        f"{ok} ok, {len(failed)} failed, {len(wrong)} with wrong output"
        + (f", {len(run.missing)} not measured" if run.missing else "")
        + ".",
        "",
    ]
    for warning in run.warnings:
        lines += [f"> **warning:** {md(warning)}", ""]
    if run.failing:
        lines.append("**Failing cells**")
        lines.append("")
        rows = [
            [_device(c), md(c.variant_id), md(c.delegate), md(c.outcome.detail)]
            for c in run.failing
        ]
        lines += _table(["device", "variant", "delegate", "problem"], rows)
        lines.append("")
    if comparison is not None:
        lines += _regressions(comparison)
    lines += _all_cells(run)
    return lines


def _regressions(cmp: Comparison) -> list[str]:
    base = cmp.baseline
    name = f"`{md(base.tags[0])}` ({md(base.id)})" if base.tags else f"`{md(base.id)}`"
    regressed = cmp.regressions
    unsure = [
        f"- inconclusive: {_device(c.cell)} {md(c.cell.variant_id)} {md(c.cell.delegate)}: "
        + md("; ".join(c.inconclusive))
        for c in cmp.inconclusive
    ]
    if not regressed:
        return [
            f"**No regression vs {name}** ({len(cmp.cells)} cells compared, "
            f"{len(cmp.improvements)} improved, {len(unsure)} inconclusive).",
            "",
            *unsure,
            *([""] if unsure else []),
        ]
    lines = [f"**{len(regressed)} regressed vs {name}** ({len(cmp.cells)} cells compared)", ""]
    rows = []
    for r in regressed:
        avg = r.delta("avg_ms")
        ioref = r.delta("iou_ref")
        rows.append(
            [
                _device(r.cell),
                md(r.cell.variant_id),
                md(r.cell.delegate),
                f"{fmt.ms(avg.base)} → {fmt.ms(avg.new)} ms ({fmt.pct(avg.pct)})",
                f"{fmt.iou(ioref.base)} → {fmt.iou(ioref.new)}",
                md(", ".join(r.reasons)),
            ]
        )
    lines += _table(["device", "variant", "delegate", "avg latency", "IoU ref", "why"], rows)
    lines.append("")
    return lines + unsure + ([""] if unsure else [])


def _all_cells(run: RunData) -> list[str]:
    if not run.cells:
        return []
    lines = ["<details><summary>All cells</summary>", ""]
    header = ["device", "variant", "delegate", "runner", "avg ms", "spread", "IoU ref", "IoU GT"]
    header.append("status")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for c in run.cells:
        status = (
            "ok"
            if not c.outcome.failing
            else ("FAILED" if not c.measured else md(c.accuracy.signature or "?"))
        )
        lines.append(
            f"| {_device(c)} | {md(c.variant_id)} | {md(c.delegate)} | {md(c.latency.timed_by)} | "
            f"{fmt.ms(c.latency.avg_ms)} | "
            f"{fmt.pct(c.latency.spread_pct, signed=False)} | {fmt.iou(c.accuracy.reference.iou)} | "
            f"{fmt.iou(c.accuracy.gt.iou)} | {status} |"
        )
    lines += ["", RUNNER_NOTE, "", "</details>", ""]
    return lines


RUNNER_NOTE = (
    "Runner: `shell` = benchmark_model started by adb shell, `apk` = the benchmark app in the "
    "foreground (timings read from logcat). The accuracy pass always runs the binary: the APK "
    "writes no output file."
)


def render_markdown(report: ReportData) -> str:
    lines = ["## harness benchmark report", ""]
    if report.any_virtual:
        models = ", ".join(md(m) for m in report.virtual_models) or "the baseline"
        lines += [
            f"> **VIRTUAL**: results include virtual phones ({models}): measurements of a "
            "virtual phone on the host, not of the real phone model.",
            "",
        ]
    for run in report.runs:
        lines += _run(run, report.comparison(run))
        lines += sections_perf.markdown(report.perf.get(run.id))
        lines += _diagnosis(report.diagnoses.get(run.id))
    return "\n".join(lines).rstrip() + "\n"


def _diagnosis(dx: dict | None) -> list[str]:
    """The `harness diagnose` verdict of a run: one line per device plus the recommendation."""
    if not dx:
        return []
    lines = ["", "**Diagnosis**", ""]
    ll = dx.get("largest_logit") or {}
    if ll:
        verdict = "exposed" if ll.get("exposed") else "not exposed"
        lines.append(
            f"- largest softmax input {ll['value']:.2f} vs ln(65504) = "
            f"{ll['limit']:.2f}: {verdict} to the FP16 softmax overflow"
        )
    for dev in dx.get("devices", []):
        tag = " (virtual)" if dev.get("virtual") else ""
        gen = dev.get("gpu_delegate")
        tag += f", GPU delegate {md(gen)}" if gen else ""
        lines.append(f"- {md(dev.get('model', '?'))}{tag}: {md(dev.get('summary', ''))}")
        text = (dev.get("recommendation") or {}).get("text")
        if text:
            lines.append(f"  - ship: {md(text)}")
        for remedy in dev.get("remedies") or []:
            lines.append(f"  - fix: {md(remedy)}")
    return lines + [""]
