"""``harness gate``: judge a run against a release policy (registered in harness/cli.py).

On a terminal it prints one line per rule (checks, passed, failed) and then every failing check
in full; ``--verbose`` prints every check; ``--json`` the checks as JSON. The JUnit XML is
written either way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import GateFailed, UsageError
from harness.report.commands import (
    JsonOption,
    StoreOption,
    _atomic_write,
    _open_store,
    _writable_file,
)
from harness.store import DEFAULT_STORE
from harness.ui import console

DEFAULT_GATE_JUNIT = Path("results") / "gate-junit.xml"


def gate_table(result) -> Table:
    """Every check: rule, device, variant, delegate, check, limit, measured, PASS/FAIL."""
    table = Table(title=f"Gate: {escape(result.policy.path)}", title_justify="left")
    for col in ("rule", "device", "variant", "delegate", "check", "limit", "measured", "result"):
        justify = "right" if col in ("limit", "measured") else "left"
        table.add_column(col, justify=justify, overflow="fold")
    rules = [r.name for r in result.policy.rules]
    for i, c in enumerate(result.checks):
        device = escape(c.device) + (" [magenta]VIRTUAL[/]" if c.virtual else "")
        verdict = "[green]PASS[/]" if c.passed else "[bold red]FAIL[/]"
        if not c.passed and c.detail:
            verdict += f" [dim]{escape(c.detail)}[/]"
        last = i + 1 == len(result.checks) or result.checks[i + 1].rule != c.rule
        table.add_row(
            escape(c.rule) + f" [dim](line {c.rule_line})[/]",
            device,
            escape(c.variant),
            escape(c.delegate),
            escape(c.label),
            escape(c.limit),
            escape(c.measured),
            verdict,
            end_section=last and c.rule != rules[-1],
        )
    return table


def rule_table(result) -> Table:
    """One row per rule of the policy, in its order: checks, passed, failed."""
    table = Table(title=f"Gate: {escape(result.policy.path)}", title_justify="left")
    table.add_column("rule")
    for col in ("checks", "passed", "failed"):
        table.add_column(col, justify="right")
    for rule in result.policy.rules:
        checks = [c for c in result.checks if c.rule == rule.name]
        failed = sum(not c.passed for c in checks)
        table.add_row(
            escape(rule.name) + f" [dim](line {rule.line})[/]",
            str(len(checks)),
            str(len(checks) - failed),
            f"[bold red]{failed}[/]" if failed else "0",
        )
    return table


def _print_result(out: Console, result, verbose: bool) -> None:
    out.print(gate_table(result) if verbose else rule_table(result))
    if result.run.any_virtual:
        out.print(
            "[magenta]VIRTUAL[/]: this run was measured on virtual phones; a pass says "
            "nothing about the real phone models.",
            highlight=False,
        )
    failed = result.failed
    if not failed:
        out.print(f"[bold green]PASSED[/] all {len(result.checks)} checks", highlight=False)
        return
    out.print(f"[bold red]FAILED[/] {len(failed)} of {len(result.checks)} checks:")
    for c in failed:
        out.print(
            f"  [red]x[/] {escape(c.rule)}: {escape(c.where)}: {escape(c.label)} "
            f"{escape(c.measured)} (limit {escape(c.limit)})"
            + (f" - {escape(c.detail)}" if c.detail else ""),
            highlight=False,
            soft_wrap=True,
        )


def gate(
    run: Annotated[
        str | None, typer.Argument(metavar="RUN", help="Run id or tag (default: the latest).")
    ] = None,
    policy: Annotated[
        Path,
        typer.Option("--policy", metavar="TOML", help="Release policy (see docs/report.md)."),
    ] = Path("benchmarks") / "release.toml",
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="RUN|TAG",
            help="Baseline for max_regression_pct (overrides the policy's gate.baseline).",
        ),
    ] = None,
    junit: Annotated[
        Path, typer.Option("--junit", metavar="PATH", help="Where to write the JUnit XML.")
    ] = DEFAULT_GATE_JUNIT,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", help="Print every check, not one line per rule."),
    ] = False,
) -> None:
    """Check a run against a release policy; exit 1 when a check fails, 2 on a bad policy."""
    from harness.gate import evaluate, gate_suites
    from harness.policy import load_policy
    from harness.report.data import load_run
    from harness.report.junit import render_junit

    _writable_file(Path(junit), "--junit")
    rules = load_policy(policy)
    with _open_store(store) as db:
        data = load_run(db, run)
        base_ref = baseline or rules.baseline
        base = None
        if base_ref:
            try:
                base = load_run(db, base_ref)
            except UsageError as exc:
                where = "--baseline" if baseline else f"{rules.path}:{rules.baseline_line}"
                raise UsageError(f"{where}: {exc}") from None
    result = evaluate(rules, data, base)
    _atomic_write(Path(junit), render_junit("harness gate", gate_suites(result)))
    failed = result.failed
    if as_json:
        payload = result.to_json() | {"junit": str(junit)}
        typer.echo(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))
    else:
        _print_result(console(), result, verbose)
        console().print(f"JUnit: {escape(str(junit))}", highlight=False)
    if failed:
        raise GateFailed(
            f"gate failed: {len(failed)} of {len(result.checks)} checks failed for run "
            f"{data.id} ({rules.path})"
        )
