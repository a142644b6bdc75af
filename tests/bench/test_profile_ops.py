"""harness bench --profile-ops on a virtual phone: stored op rows, the SOFTMAX share of the
softmax head, the diff against the sigmoid head, CPU-fallback ops of a partial delegation."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.bench.run import BenchOptions, run_bench
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.variants import Head, Precision
from harness.report.assemble import load_report, render_json
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.sections_perf import GPU_ONE_ROW
from harness.store import Store


@pytest.fixture(scope="module")
def argmax_model(bench_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("argmax") / "tiny"
    shutil.copytree(bench_model, folder)
    convert_model(folder, ConvertOptions(heads=(Head.ARGMAX,), precisions=(Precision.FP32,),
                                         accuracy=False))  # fmt: skip
    return folder


def _run(model, phone, store, **kw):
    opts = BenchOptions(model=str(model), devices=(phone.serial,), store=str(store), runs=3,
                        warmup=1, repeats=2, images=2, profile_ops=True, **kw)  # fmt: skip
    out = run_bench(opts)
    assert out.status == "complete", [c.reason for c in out.cells]
    return out.run_id


def test_profile_ops_softmax_share_and_head_diff(bench_model, phones, tmp_path):
    store_path = tmp_path / "r.db"
    run_id = _run(bench_model, phones[0], store_path, variants="softmax-fp32,sigmoid-fp32",
                  delegates="cpu,gpu")  # fmt: skip
    with Store(store_path) as store:
        cells = {(c.variant_id, c.delegate): c for c in store.cells(run_id)}
        softmax_cpu = cells[("softmax-fp32", "cpu")]
        rows = store.op_profile(run_id, softmax_cpu.key)
        assert "_bulk" not in softmax_cpu.latency.to_json()  # rows live in their own table
        summary = softmax_cpu.latency.op_profile
        assert summary["virtual"] is True and summary["nodes"] == len(rows) > 2
        softmax = [r for r in rows if r["node_type"] == "SOFTMAX"]
        assert len(softmax) == 1 and 0 < softmax[0]["pct"] < 100
        assert not any(r["on_cpu"] for r in rows)  # a CPU cell: nothing "fell back"
        sigmoid_rows = store.op_profile(run_id, cells[("sigmoid-fp32", "cpu")].key)
        assert "LOGISTIC" in {r["node_type"] for r in sigmoid_rows}
        assert "SOFTMAX" not in {r["node_type"] for r in sigmoid_rows}
        gpu_rows = store.op_profile(run_id, cells[("softmax-fp32", "gpu")].key)
        assert [r["node_type"] for r in gpu_rows] == ["TfLiteGpuDelegateV2"]
        report = load_report(store, [run_id])
    perf = report.perf[run_id]
    (head_diff,) = [d for d in perf.diffs if d.kind == "head" and d.a.cell.delegate == "cpu"]
    by_type = {r["node_type"]: r for r in head_diff.rows}
    assert by_type["SOFTMAX"]["a_pct"] > 0 and by_type["SOFTMAX"]["b_ms"] is None
    assert by_type["LOGISTIC"]["a_ms"] is None and by_type["LOGISTIC"]["b_ms"] > 0
    html = render_html(report)
    assert "Op diff (head)" in html and GPU_ONE_ROW in html and "SOFTMAX" in html
    assert "Op diff (head)" in render_markdown(report)
    data = json.loads(render_json(report))["perf"][run_id]
    assert {d["kind"] for d in data["op_diffs"]} == {"head", "delegate"}


def test_partially_delegated_model_lists_its_cpu_ops(argmax_model, phones, tmp_path):
    store_path = tmp_path / "r.db"
    run_id = _run(argmax_model, phones[0], store_path, variants="argmax-fp32", delegates="gpu")
    with Store(store_path) as store:
        (cell,) = store.cells(run_id)
        assert cell.delegation.verdict == "partial"
        rows = store.op_profile(run_id, cell.key)
        cpu = [r for r in rows if r["on_cpu"]]
        assert cpu and all(r["avg_ms"] > 0 for r in cpu)
        assert "ARG_MAX" in {r["node_type"] for r in cpu}
        assert sum(r["delegate_node"] for r in rows) >= 1
        summary = cell.latency.op_profile
        assert summary["cpu_fallback_ops"] == len(cpu) and 0 < summary["cpu_fallback_pct"] < 100
        html = render_html(load_report(store, [run_id]))
    assert "CPU-fallback ops" in html and "ARG_MAX" in html
