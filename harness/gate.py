"""Judge a run against a release policy: every rule x matched cell x threshold is one check.

Pure: :func:`evaluate` takes a :class:`~harness.policy.Policy` and runs already loaded from the
store (:mod:`harness.report.data`) and returns a :class:`GateResult`. A missing measurement
never passes: a rule that matches no cell, a failed cell, a planned cell that was never
measured, a metric that is null, a cell without a baseline counterpart, each is a failing check
that says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.bench import stats
from harness.cell import METRICS
from harness.errors import UsageError
from harness.policy import Policy, Rule, Threshold
from harness.report import formatting as fmt
from harness.report.compare import change_pct, match_cells
from harness.report.data import PlannedCell, ReportCell, RunData
from harness.runner.flags import is_cpu_delegate


@dataclass(frozen=True)
class CheckResult:
    rule: str
    rule_line: int
    check: str  # a threshold key, or "match" for a rule that matched nothing
    label: str
    device: str  # model code ("*" for a rule that matched nothing)
    serial: str
    virtual: bool
    variant: str
    delegate: str
    limit: str
    measured: str
    value: float | None
    passed: bool
    detail: str = ""
    server: str = ""  # the adb server the device was reached through (with serial: which one)

    @property
    def where(self) -> str:
        device = self.device + (" [virtual]" if self.virtual else "")
        return f"{device} {self.variant} {self.delegate}"

    def to_json(self) -> dict:
        return {
            "rule": self.rule,
            "rule_line": self.rule_line,
            "check": self.check,
            "label": self.label,
            "device": self.device,
            "serial": self.serial,
            "virtual": self.virtual,
            "variant": self.variant,
            "delegate": self.delegate,
            "limit": self.limit,
            "measured": self.measured,
            "value": self.value,
            "passed": self.passed,
            "detail": self.detail,
            "server": self.server,
        }


@dataclass(frozen=True, eq=False)
class GateResult:
    policy: Policy
    run: RunData
    baseline: RunData | None
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.failed

    def to_json(self) -> dict:
        return {
            "policy": self.policy.path,
            "run": self.run.id,
            "run_tags": list(self.run.tags),
            "virtual": self.run.any_virtual,
            "baseline": self.baseline.id if self.baseline else None,
            "passed": self.passed,
            "checks": len(self.checks),
            "failed": len(self.failed),
            "results": [c.to_json() for c in self.checks],
        }


def _format(t: Threshold, value: float | None) -> str:
    if value is None:
        return fmt.MISSING
    if t.unit == "ms":
        return f"{fmt.ms(value)} ms"
    if t.unit == "%":
        return fmt.pct(value, signed=t.key == "max_regression_pct")
    if t.key.startswith("min_iou"):
        return fmt.iou(value)
    return fmt.number(value)


def format_limit(t: Threshold, limit) -> str:
    if t.kind == "require":
        return "full"
    op = "<=" if t.kind == "max" else ">="
    return f"{op} {_format(t, float(limit))}"


_METRIC_OF = {  # threshold key -> harness.cell.METRICS key
    "max_avg_ms": "avg_ms",
    "max_p95_ms": "p95_ms",
    "max_spread_pct": "spread_pct",
    "max_init_ms": "init_ms",
    "min_iou_ref": "iou_ref",
    "min_iou_gt": "iou_gt",
    "max_nan": "nonfinite",
    "max_sustained_avg_ms": "sustained_avg_ms",
    "max_throttle_pct": "throttle_pct",
}


class _Checker:
    def __init__(self, rule: Rule, baseline_of: dict[ReportCell, ReportCell] | None) -> None:
        self.rule = rule
        self.baseline_of = baseline_of

    def _result(self, cell, t: Threshold, limit, measured, value, passed, detail="") -> CheckResult:
        return CheckResult(
            rule=self.rule.name,
            rule_line=self.rule.line,
            check=t.key,
            label=t.label,
            device=cell.device_model,
            serial=cell.serial,
            virtual=cell.virtual,
            variant=cell.variant_id,
            delegate=cell.delegate,
            limit=format_limit(t, limit),
            measured=measured,
            value=value,
            passed=passed,
            detail=detail,
            server=cell.device.server,
        )

    def missing(self, cell: PlannedCell, t: Threshold, limit, run_status: str) -> CheckResult:
        why = f"not measured: the cell is in the plan but has no result (run {run_status})"
        return self._result(cell, t, limit, fmt.MISSING, None, False, why)

    def check(self, cell: ReportCell, t: Threshold, limit) -> CheckResult:
        """One threshold of one cell. Whether the cell was measured is the cell's judge's call
        (:func:`harness.cell.judge`); the thresholds are the gate's."""
        if not cell.outcome.measured:
            reason = f"cell {cell.outcome.detail}"
            return self._result(cell, t, limit, fmt.MISSING, None, False, reason)
        if t.key == "full_delegation":
            verdict = cell.delegation.verdict
            if verdict == "full":
                return self._result(cell, t, limit, "full", None, True)
            detail = f"delegation verdict {verdict or 'not recorded'}"
            if is_cpu_delegate(cell.delegate):
                detail += " (a CPU delegate has nothing to delegate: narrow the rule's delegate)"
            elif cell.delegation.ops:
                ops = ", ".join(op for op, _ in cell.delegation.ops)
                detail += f"; unsupported ops: {ops}"
            return self._result(cell, t, limit, verdict or fmt.MISSING, None, False, detail)
        if t.key == "max_regression_pct":
            return self._regression(cell, t, limit)
        value = METRICS[_METRIC_OF[t.key]](cell)
        value = None if value is None else float(value)
        if value is None:
            return self._result(cell, t, limit, fmt.MISSING, None, False, "not measured")
        passed = value <= limit if t.kind == "max" else value >= limit
        if t.key == "max_throttle_pct":  # say why: throttling (a frequency drop) or drift
            detail = (cell.latency.sustain or {}).get("throttle_reason", "")
            return self._result(cell, t, limit, _format(t, value), value, passed, detail)
        return self._result(cell, t, limit, _format(t, value), value, passed)

    def _regression(self, cell: ReportCell, t: Threshold, limit) -> CheckResult:
        base = (self.baseline_of or {}).get(cell)
        if base is None:
            why = "no baseline cell for this device, variant and delegate"
            return self._result(cell, t, limit, fmt.MISSING, None, False, why)
        if base.virtual != cell.virtual:
            why = "baseline cell is " + ("virtual" if base.virtual else "on a real phone")
            return self._result(cell, t, limit, fmt.MISSING, None, False, why + ": not comparable")
        if not base.outcome.measured:
            why = f"baseline cell {base.outcome.detail}"
            return self._result(cell, t, limit, fmt.MISSING, None, False, why)
        value = change_pct(cell.latency.avg_ms, base.latency.avg_ms)
        if value is None:
            return self._result(cell, t, limit, fmt.MISSING, None, False, "latency not measured")
        # A regression only when the 95% intervals separate (harness.bench.stats); a change
        # past the limit that the intervals cannot confirm passes, marked inconclusive.
        decision = stats.decide_cells(base.latency.to_json(), cell.latency.to_json(), float(limit))
        detail = (
            f"{fmt.ms(base.latency.avg_ms)} -> {fmt.ms(cell.latency.avg_ms)} ms vs {base.run_id}"
        )
        if decision.verdict == stats.INCONCLUSIVE:
            detail = f"inconclusive: {decision.why}; {detail}"
        elif decision.regressed:
            detail = f"{detail}; {decision.why}"
        passed = not decision.regressed
        return self._result(cell, t, limit, _format(t, value), value, passed, detail)


def _no_match(rule: Rule, run: RunData) -> CheckResult:
    return CheckResult(
        rule=rule.name,
        rule_line=rule.line,
        check="match",
        label="matches a measured cell",
        device=",".join(rule.devices),
        serial="",
        virtual=False,
        variant=",".join(rule.variants),
        delegate=",".join(rule.delegates),
        limit=">= 1 cell",
        measured="0 cells",
        value=0.0,
        passed=False,
        detail=f"rule matches no measured cell of run {run.id} ({rule.selector}); "
        "a missing measurement never passes",
    )


def evaluate(policy: Policy, run: RunData, baseline: RunData | None = None) -> GateResult:
    needs = policy.needs_baseline()
    if needs and baseline is None:
        rule = needs[0]
        raise UsageError(
            f"{policy.path}:{rule.line_of('max_regression_pct')}: max_regression_pct needs a "
            'baseline: set baseline = "TAG" in the policy\'s gate table or pass --baseline'
        )
    baseline_of = match_cells(run, baseline) if baseline is not None else None
    checks: list[CheckResult] = []
    for rule in policy.rules:
        checker = _Checker(rule, baseline_of)
        cells = [
            c for c in run.cells if rule.matches(c.serial, c.device_model, c.variant_id, c.delegate)
        ]
        planned = [
            m
            for m in run.missing
            if rule.matches(m.serial, m.device_model, m.variant_id, m.delegate)
        ]
        if not cells and not planned:
            checks.append(_no_match(rule, run))
            continue
        for cell in cells:
            checks.extend(checker.check(cell, t, limit) for t, limit in rule.limits)
        for cell in planned:
            checks.extend(checker.missing(cell, t, limit, run.status) for t, limit in rule.limits)
    return GateResult(policy, run, baseline, tuple(checks))


def gate_suites(result: GateResult):
    """JUnit suites: one per rule, one test case per check."""
    from harness.report.junit import Case, Suite

    suites = []
    for rule in result.policy.rules:
        cases = []
        for c in (c for c in result.checks if c.rule == rule.name):
            failure = None
            if not c.passed:
                failure = f"{c.label}: measured {c.measured}, limit {c.limit}" + (
                    f"; {c.detail}" if c.detail else ""
                )
            cases.append(
                Case(
                    classname=f"{c.device}{' [virtual]' if c.virtual else ''}.{c.serial or '*'}",
                    name=f"{c.variant} {c.delegate}: {c.label} {c.limit}",
                    failure=failure,
                    kind="gate",
                    output=f"measured {c.measured}" + (f"; {c.detail}" if c.detail else ""),
                )
            )
        props = [
            ("policy", result.policy.path),
            ("rule_line", str(rule.line)),
            ("run", result.run.id),
            ("virtual", str(result.run.any_virtual)),
        ]
        suites.append(Suite(f"gate: {rule.name}", cases, props))
    return suites
