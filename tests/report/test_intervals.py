"""Regressions judged with confidence intervals: noisy changes are inconclusive, in the report
and in the gate; confirmed ones are flagged."""

from __future__ import annotations

import json
from dataclasses import replace

from harness.gate import evaluate
from harness.policy import parse_policy
from harness.report.assemble import load_report, render_json
from harness.report.data import load_run
from harness.report.html import render_html
from harness.report.markdown import render_markdown


def _noisy(store, run_id, spread):
    """Rewrite every cell of a run with two invocations ``avg ± spread`` (same mean)."""
    for cell in store.cells(run_id):
        avg = cell.latency.avg_ms
        lat = replace(cell.latency, invocation_avg_ms=(avg * (1 - spread), avg * (1 + spread)))
        store.record_cell(replace(cell, latency=lat), store.outputs(run_id, cell.key))


def test_noisy_20_percent_change_is_inconclusive_in_the_report(bench, store):
    base = bench.run()
    slower = bench.run(scale=1.2)
    _noisy(store, slower, 0.15)  # t(1) = 12.7: the interval is about ±190%
    report = load_report(store, [slower], baseline=base)
    (cmp,) = report.comparisons
    assert not cmp.regressions and len(cmp.inconclusive) == 18
    assert "overlap" in cmp.inconclusive[0].inconclusive[0]
    assert "18 inconclusive" in render_markdown(report)
    assert "18 inconclusive" in render_html(report)
    data = json.loads(render_json(report))["comparisons"][0]
    assert data["inconclusive"] == 18 and data["regressions"] == 0
    avg = next(d for d in data["cells"][0]["deltas"] if d["metric"] == "avg_ms")
    assert avg["decision"] == "inconclusive" and len(avg["new_ci95"]) == 2


def test_gate_passes_an_unconfirmed_regression_and_says_inconclusive(bench, store):
    base = bench.run()
    slower = bench.run(scale=1.2)
    policy = parse_policy("[[rule]]\nmax_regression_pct = 10\n", "p.toml")
    confirmed = evaluate(policy, load_run(store, slower), load_run(store, base))
    assert len(confirmed.failed) == 18 and "intervals separate" in confirmed.failed[0].detail
    _noisy(store, slower, 0.15)
    noisy = evaluate(policy, load_run(store, slower), load_run(store, base))
    assert noisy.passed
    assert all(c.detail.startswith("inconclusive:") for c in noisy.checks)


def test_intervals_and_failed_optional_passes_are_shown(bench, store):
    run_id = bench.run()
    (cell, *_) = store.cells(run_id)
    lat = replace(cell.latency, ci95_ms=(1.0, 2.0), ci95_pct=33.0, invocations=5,
                  ci_method="t95 over invocation means", ci_target_pct=2.0, ci_target_met=False,
                  op_profile={"error": "op profiling pass: no profile"})  # fmt: skip
    store.record_cell(replace(cell, latency=lat), store.outputs(run_id, cell.key))
    report = load_report(store, [run_id])
    html = render_html(report)
    assert "Latency confidence" in html and "±2% not met" in html
    assert "op profiling pass: no profile (its latency is kept)" in html
    data = json.loads(render_json(report))["perf"][run_id]
    assert data["intervals"][0]["ci95_ms"] == [1.0, 2.0] and len(data["errors"]) == 1
