"""The report's performance sections (issue 18): confidence intervals, op profiles with a
head-vs-head / delegate-vs-delegate diff, GPU init cold vs warm, sustained runs.

:func:`load_perf` reads what a run stored (cell latency keys, the ``op_profiles`` and
``sustain_samples`` tables through :class:`~harness.store.Store`); the rest is pure and feeds
the HTML template (``templates/perf.html.j2``), the Markdown and the JSON renderers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.bench import profile_ops
from harness.report import formatting as fmt
from harness.report.data import ReportCell, RunData
from harness.store import Store

TOP_OPS = 8
GPU_ONE_ROW = (
    "On a GPU (or NNAPI) delegate the delegate kernel is one row (TfLiteGpuDelegateV2): the "
    "profiler cannot see the ops inside it; the other rows are ops that fell back to the CPU."
)
VIRTUAL_OPS = (
    "Virtual phone: each node is timed alone on the host LiteRT (a one-node model fed the "
    "values of a full run); an emulated delegate's row is the host time of its nodes."
)


def _head(variant_id: str) -> tuple[str, str]:
    head, _, rest = variant_id.partition("-")
    return head, rest


@dataclass(frozen=True, eq=False)
class CellOps:
    cell: ReportCell
    rows: list[dict]

    @property
    def summary(self) -> dict:
        return profile_ops.summary(self.rows, self.cell.virtual)

    @property
    def top(self) -> list[dict]:
        return sorted(self.rows, key=lambda r: -r["avg_ms"])[:TOP_OPS]

    @property
    def cpu_ops(self) -> list[dict]:
        return [r for r in self.rows if r["on_cpu"]]

    @property
    def delegate_rows(self) -> list[dict]:
        return [r for r in self.rows if r["delegate_node"]]

    def share(self, node_type: str) -> float | None:
        return profile_ops.type_share(self.rows).get(node_type)

    def to_json(self) -> dict:
        return {
            "cell": self.cell.label,
            "virtual": self.cell.virtual,
            "summary": self.summary,
            "rows": self.rows,
        }


@dataclass(frozen=True, eq=False)
class OpsDiff:
    """Node types of two cells side by side: two heads on one device and delegate, or two
    delegates for one variant."""

    kind: str  # "head" | "delegate"
    a: CellOps
    b: CellOps

    @property
    def rows(self) -> list[dict]:
        return profile_ops.diff(self.a.rows, self.b.rows)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "a": self.a.cell.label,
            "b": self.b.cell.label,
            "rows": self.rows,
        }


@dataclass(frozen=True, eq=False)
class Sustained:
    cell: ReportCell
    samples: list[dict]

    @property
    def summary(self) -> dict:
        return self.cell.latency.sustain or {}

    def to_json(self) -> dict:
        return {"cell": self.cell.label, "summary": self.summary, "samples": self.samples}


@dataclass(frozen=True, eq=False)
class PerfData:
    intervals: list[ReportCell] = field(default_factory=list)
    ops: list[CellOps] = field(default_factory=list)
    diffs: list[OpsDiff] = field(default_factory=list)
    init: list[ReportCell] = field(default_factory=list)
    sustained: list[Sustained] = field(default_factory=list)
    errors: list[tuple[ReportCell, str]] = field(
        default_factory=list
    )  # optional passes that failed

    @property
    def empty(self) -> bool:
        return not (self.intervals or self.ops or self.init or self.sustained or self.errors)

    def to_json(self) -> dict:
        return {
            "intervals": [
                {
                    "cell": c.label,
                    "avg_ms": c.latency.avg_ms,
                    "ci95_ms": c.latency.ci95_ms,
                    "ci95_pct": c.latency.ci95_pct,
                    "ci_method": c.latency.ci_method,
                    "invocations": c.latency.invocations,
                    "ci_target_pct": c.latency.ci_target_pct,
                    "ci_target_met": c.latency.ci_target_met,
                }
                for c in self.intervals
            ],
            "op_profiles": [o.to_json() for o in self.ops],
            "op_diffs": [d.to_json() for d in self.diffs],
            "gpu_init": [
                {
                    "cell": c.label,
                    "init_cold_ms": c.latency.init_cold_ms,
                    "init_warm_ms": c.latency.init_warm_ms,
                    "kernel_cache": c.latency.kernel_cache,
                }
                for c in self.init
            ],
            "sustained": [s.to_json() for s in self.sustained],
            "errors": [{"cell": c.label, "error": e} for c, e in self.errors],
        }


def _diffs(ops: list[CellOps]) -> list[OpsDiff]:
    out: list[OpsDiff] = []
    by_cell = {(o.cell.device, o.cell.variant_id, o.cell.delegate): o for o in ops}
    for o in ops:  # softmax head vs each other head: same device, precision and delegate
        head, rest = _head(o.cell.variant_id)
        if head != "softmax":
            continue
        for other in ops:
            h2, r2 = _head(other.cell.variant_id)
            same = other.cell.device == o.cell.device and other.cell.delegate == o.cell.delegate
            if same and r2 == rest and h2 != head:
                out.append(OpsDiff("head", o, other))
    for o in ops:  # a GPU delegate vs the CPU for the same variant
        if o.cell.delegate != "cpu":
            continue
        for d in ("gpu", "gpu-fp32", "gpu-cl", "gpu-gl", "nnapi"):
            other = by_cell.get((o.cell.device, o.cell.variant_id, d))
            if other is not None:
                out.append(OpsDiff("delegate", other, o))
    return out


def load_perf(store: Store, run: RunData) -> PerfData:
    """Everything the performance sections show for one run (empty when nothing was asked)."""
    ok = [c for c in run.cells if c.measured]
    intervals = [c for c in ok if c.latency.ci95_ms]
    ops = [CellOps(c, rows) for c in ok if (rows := store.op_profile(run.id, c.key))]
    init = [c for c in ok if c.latency.init_cold_ms is not None]
    sustained = [Sustained(c, s) for c in ok if (s := store.sustain(run.id, c.key))]
    errors = [
        (c, str(e))
        for c in ok
        for e in (
            (c.latency.op_profile or {}).get("error"),
            c.latency.gpu_init_error,
        )
        if e
    ]
    return PerfData(intervals, ops, _diffs(ops), init, sustained, errors)


# -- Markdown ----------------------------------------------------------------------------------
def markdown(perf: PerfData | None) -> list[str]:
    from harness.report.markdown import md

    if perf is None or perf.empty:
        return []
    lines: list[str] = []
    if perf.intervals:
        lines += ["**Latency with 95% confidence intervals** (Student t over invocation means)", ""]
        lines += ["| cell | avg ms | 95% CI ms | ± | invocations | target |", "|---|---|---|---|---|---|"]  # fmt: skip
        for c in perf.intervals:
            low, high = c.latency.ci95_ms
            target = c.latency.ci_target_pct
            met = c.latency.ci_target_met
            tgt = "—" if target is None else f"±{target:g}% {'met' if met else 'NOT met'}"
            lines.append(
                f"| {md(c.label)} | {fmt.ms(c.latency.avg_ms)} | {fmt.ms(low)} – {fmt.ms(high)} | "
                f"{fmt.pct(c.latency.ci95_pct, signed=False)} | "
                f"{c.latency.invocations} | {tgt} |"
            )
        lines.append("")
    for o in perf.ops:
        s = o.summary
        lines.append(
            f"**Op profile: {md(o.cell.label)}** ({s['nodes']} rows, {fmt.ms(s['total_ms'])} ms)"
        )
        lines.append("")
        lines += ["| op | node type | avg ms | % |", "|---|---|---|---|"]
        for r in o.top:
            lines.append(
                f"| {md(r['name'])} | {md(r['node_type'])} | {fmt.ms(r['avg_ms'])} | "
                f"{fmt.pct(r['pct'], signed=False)} |"
            )
        if o.delegate_rows:
            lines.append("")
            lines.append(GPU_ONE_ROW)
            cpu = o.cpu_ops
            lines.append(
                f"CPU-fallback ops: {len(cpu)}"
                + (
                    f", {fmt.ms(s['cpu_fallback_ms'])} ms = {s['cpu_fallback_pct']:.1f}%: "
                    if cpu
                    else ""
                )
                + ", ".join(f"{md(r['node_type'])} {fmt.ms(r['avg_ms'])} ms" for r in cpu)
            )
        if o.cell.virtual:
            lines += ["", VIRTUAL_OPS]
        lines.append("")
    for d in perf.diffs:
        lines.append(f"**Op diff ({d.kind}): A = {md(d.a.cell.label)}, B = {md(d.b.cell.label)}**")
        lines += ["", "| node type | A ms | A % | B ms | B % |", "|---|---|---|---|---|"]
        for r in d.rows:
            lines.append(
                f"| {md(r['node_type'])} | {fmt.ms(r['a_ms'])} | {fmt.pct(r['a_pct'], signed=False)} | "
                f"{fmt.ms(r['b_ms'])} | {fmt.pct(r['b_pct'], signed=False)} |"
            )
        lines.append("")
    return lines


# -- HTML --------------------------------------------------------------------------------------
def html_view(perf: PerfData | None) -> dict | None:
    """What ``templates/perf.html.j2`` shows for one run, or None."""
    if perf is None or perf.empty:
        return None
    from harness.report import charts_perf

    return {
        "perf": perf,
        "gpu_one_row": GPU_ONE_ROW,
        "virtual_ops": VIRTUAL_OPS,
        "sustain_charts": [(s, charts_perf.sustain_chart(s)) for s in perf.sustained],
    }
