"""Matrix verdicts, the recommendation and the stored diagnosis, on hand-made cells."""

from __future__ import annotations

from harness.cell import (
    Accuracy,
    Cell,
    CellOutcome,
    Delegation,
    DeviceId,
    Fidelity,
    Latency,
    Status,
    Verdict,
)
from harness.diagnose.matrix import MatrixCell, classify
from harness.diagnose.recommend import recommend
from harness.store import Store


def _cell(head, delegate, verdict="ok", ms=1.0) -> MatrixCell:
    ref = Accuracy(vs_reference=Fidelity(iou=0.999))
    cell = Cell("r", DeviceId("127.0.0.1:5037", "s"), "x", f"{head}-fp32", delegate,
                latency=Latency(avg_ms=ms), accuracy=ref)  # fmt: skip
    return MatrixCell(cell, head, CellOutcome(Verdict(verdict)))


def test_recommendation_keeps_the_failing_delegate_and_prices_the_remedies():
    cells = [
        _cell("softmax", "gpu", "nan", 2.0),
        _cell("softmax", "gpu-fp32", "ok", 4.0),
        _cell("softmax", "cpu", "ok", 8.0),
        _cell("sigmoid", "gpu", "ok", 2.1),
        _cell("logits", "gpu", "ok", 2.2),
        _cell("logits", "cpu", "ok", 1.5),  # faster, but not on the GPU the user chose
    ]
    rec = recommend(cells)
    assert rec["recommended"]["config"] == "sigmoid head on GPU FP16"
    assert rec["text"] == "sigmoid head on GPU FP16: IoU 0.999, 2.10 ms"
    assert rec["fastest_correct"]["config"] == "logits head on CPU"
    assert rec["instead_of"]["config"] == "softmax head on GPU FP16"
    kinds = {a["kind"]: a for a in rec["alternatives"]}
    assert kinds["fp32"]["config"] == "softmax head on GPU FP32"
    assert round(kinds["fp32"]["delta_pct"]) == 90
    assert kinds["cpu-only"]["latency_ms"] == 8.0
    assert kinds["logits+cpu-threshold"]["config"] == "logits head on GPU FP16"


def test_partial_delegation_ranks_after_full_and_nothing_correct_is_said():
    cells = [_cell("argmax", "gpu", "partial", 0.5), _cell("sigmoid", "gpu", "ok", 0.9)]
    assert recommend(cells)["recommended"]["variant"] == "sigmoid-fp32"
    broken = [_cell("softmax", "gpu", "nan"), _cell("softmax", "cpu", "failed", None)]
    rec = recommend(broken)
    assert rec["recommended"] is None and "no configuration" in rec["text"]


def _record(status=Status.MEASURED, reason="", accuracy=None, delegation=None) -> Cell:
    return Cell(
        run_id="r",
        device=DeviceId("127.0.0.1:5037", "s"),
        variant_sha256="x",
        variant_id="softmax-fp32",
        delegate="gpu",
        status=status,
        reason=reason,
        latency=Latency(avg_ms=2.0),
        accuracy=Accuracy.from_json(
            accuracy or {"vs_reference": {"iou": 1.0, "nan": 0, "inf": 0}, "signature": "sum!=1"}
        ),
        delegation=Delegation.from_json(delegation or {"verdict": "full", "unsupported_ops": []}),
    )


def test_classify_reads_bench_cells():
    assert classify(_record(), "softmax").verdict == "sum!=1"
    assert classify(_record(), "softmax", raw_nonfinite=12).verdict == "nan"  # NaN in bg
    failed = _record(status=Status.FAILED, reason="delegate failed: TfLiteGpuDelegate Init: x")
    assert classify(failed, "softmax").verdict == "delegate-failed"
    partial = _record(
        accuracy={"vs_reference": {"iou": 1.0}, "signature": "ok"},
        delegation={"verdict": "partial", "unsupported_ops": [["ARG_MAX", "not supported"]]},
    )
    cell = classify(partial, "argmax")
    assert (
        cell.verdict == "partial"
        and cell.correct
        and cell.fallback_ops == ["ARG_MAX: not supported"]
    )


def test_diagnosis_is_stored_per_run(tmp_path):
    with Store(tmp_path / "r.db") as store:
        run = store.create_run({"model": "m"})
        assert store.diagnosis(run) is None
        store.add_diagnosis(run, {"schema": 1, "devices": []})
        store.add_diagnosis(run, {"schema": 1, "devices": [{"serial": "s"}]})
        assert store.diagnosis(run) == {"schema": 1, "devices": [{"serial": "s"}]}
