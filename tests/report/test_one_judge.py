"""One judge (issue 14): the bench's live summary, the report, the gate and diagnose read the
same stored cells and agree on every cell's outcome, because each asks harness.cell.judge."""

from __future__ import annotations

import json

import pytest

from harness.bench.commands import _cell_row
from harness.cell import (
    Accuracy,
    Cell,
    Delegation,
    DeviceId,
    Fidelity,
    Latency,
    Status,
    Verdict,
    value_signature,
)
from harness.diagnose.matrix import classify
from harness.gate import evaluate
from harness.policy import parse_policy
from harness.report.assemble import load_report, render_json
from harness.report.data import load_run
from harness.store import Store

PHONE = DeviceId("127.0.0.1:5037", "emulator-5554")


def _ref(**kw) -> dict:
    base = {"iou": 0.99, "iou_min": 0.98, "max_abs": 0.01, "nan": 0, "inf": 0,
            "sum_to_one_err": 0.0, "constant": False, "inverted": False, "worst": [0]}  # fmt: skip
    return {**base, **kw}


# variant -> (delegate, status, reason, vs_reference, delegation verdict, expected verdict)
CELLS = {
    "correct": ("cpu", Status.MEASURED, "", _ref(), "none", Verdict.CORRECT),
    "nan": ("gpu", Status.MEASURED, "", _ref(nan=12, iou=1.0), "full", Verdict.NAN),
    "sum": ("gpu", Status.MEASURED, "", _ref(sum_to_one_err=0.4), "full", Verdict.SUM_NOT_ONE),
    "constant": ("gpu", Status.MEASURED, "", _ref(constant=True, iou=0.3), "full",
                 Verdict.CONSTANT),
    "partial": ("gpu", Status.MEASURED, "", _ref(), "partial", Verdict.PARTIAL),
    "dead": ("gpu", Status.FAILED, "delegate failed: TfLiteGpuDelegate Init: no GL", None,
             "failed", Verdict.DELEGATE_FAILED),
    "crash": ("cpu", Status.FAILED, "benchmark_model crashed (SIGSEGV, exit 139)", None, "none",
              Verdict.FAILED),
}  # fmt: skip


@pytest.fixture
def stored(tmp_path):
    """A run holding one cell of every outcome, as the bench stores them (signature included)."""
    store = Store(tmp_path / "r.db")
    run = store.create_run({"device_ids": [PHONE.to_json()], "devices": [PHONE.serial]})
    store.add_device(run, PHONE, "SM-G973F", True, {"soc": "virtual"})
    for variant, (delegate, status, reason, ref, verdict, _) in CELLS.items():
        accuracy = {}
        if ref is not None:
            signature = value_signature(Fidelity.from_json(ref)).value
            accuracy = {"n": 1, "vs_reference": ref, "signature": signature}
        ops = [["ARG_MAX", "not supported"]] if verdict == "partial" else []
        store.record_cell(
            Cell(run, PHONE, f"sha-{variant}", variant, delegate, status, reason, 1.0, 2.0,
                 Latency(avg_ms=3.0) if status is Status.MEASURED else Latency(),
                 Accuracy.from_json(accuracy),
                 Delegation.from_json({"verdict": verdict, "unsupported_ops": ops}))
        )  # fmt: skip
    store.finish_run(run, "partial")
    yield store, run
    store.close()


def test_bench_report_gate_and_diagnose_agree_on_every_cell(stored):
    store, run_id = stored
    cells = {c.variant_id: c for c in store.cells(run_id)}
    assert set(cells) == set(CELLS)
    expected = {v: spec[-1] for v, spec in CELLS.items()}
    assert {v: c.outcome.verdict for v, c in cells.items()} == expected  # the judge

    # bench's live summary: the last column of each row
    for variant, cell in cells.items():
        shown = _cell_row(cell)[-1]
        verdict = expected[variant]
        if verdict in (Verdict.FAILED, Verdict.DELEGATE_FAILED):
            assert shown.startswith("[red]failed[/]"), shown
        elif verdict is Verdict.CORRECT:
            assert shown == "[green]ok[/]"
        else:
            assert shown == f"[yellow]{verdict.value}[/]"

    # the report (its model and its JSON)
    run = load_run(store, run_id)
    assert {c.variant_id: c.outcome.verdict for c in run.cells} == expected
    report = json.loads(render_json(load_report(store, [run_id], with_samples=False)))
    for c in report["runs"][0]["cells"]:
        verdict = expected[c["variant_id"]]
        assert c["outcome"] == verdict.value
        assert c["failing"] is (verdict not in (Verdict.CORRECT, Verdict.PARTIAL))
    assert {c.variant_id for c in run.failing} == {"nan", "sum", "constant", "dead", "crash"}

    # the gate: a threshold any measured cell passes; an unmeasured cell never does
    policy = parse_policy('[[rule]]\nname = "any"\nmax_avg_ms = 1e9\n')
    result = evaluate(policy, run)
    for check in result.checks:
        verdict = expected[check.variant]
        measured = verdict not in (Verdict.FAILED, Verdict.DELEGATE_FAILED)
        assert check.passed is measured, check
        if not measured:
            assert check.detail == f"cell {cells[check.variant].outcome.detail}"
    assert len(result.checks) == len(CELLS)

    # diagnose's matrix
    for variant, cell in cells.items():
        entry = classify(cell, "softmax")
        assert entry.verdict == expected[variant].value
        assert entry.to_dict()["correct"] is (expected[variant] in (Verdict.CORRECT,
                                                                    Verdict.PARTIAL))  # fmt: skip


def test_the_server_is_shown_only_when_it_disambiguates(tmp_path):
    from harness.report.markdown import render_markdown

    a, b = DeviceId("10.0.0.1:5037", "emulator-5554"), DeviceId("10.0.0.2:5037", "emulator-5554")
    other = DeviceId("10.0.0.1:5037", "R58M123")
    with Store(tmp_path / "r.db") as store:
        run = store.create_run({"device_ids": [d.to_json() for d in (a, b, other)]})
        for device in (a, b, other):
            store.add_device(run, device, "SM-G973F", False, {})
            store.record_cell(Cell(run, device, "s", "v", "cpu", latency=Latency(avg_ms=2.0)))
        report = load_report(store, [run], with_samples=False)
    loaded = report.runs[0]
    assert sorted(d.shown for d in loaded.devices) == [
        "R58M123", "emulator-5554@10.0.0.1:5037", "emulator-5554@10.0.0.2:5037"
    ]  # fmt: skip
    assert len(loaded.cells) == 3 and not loaded.missing
    markdown = render_markdown(report)
    assert "emulator-5554@10.0.0.1:5037" in markdown and "emulator-5554@10.0.0.2:5037" in markdown
    assert "R58M123@" not in markdown
    cells = json.loads(render_json(report))["runs"][0]["cells"]
    assert sorted((c["serial"], c["server"]) for c in cells) == sorted(
        (d.serial, d.server) for d in (a, b, other)
    )
    checks = evaluate(parse_policy('[[rule]]\nname = "any"\nmax_avg_ms = 10\n'), loaded).checks
    assert sorted(c.server for c in checks) == sorted(d.server for d in (a, b, other))
