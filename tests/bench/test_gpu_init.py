"""harness bench --gpu-init: init cold (kernel cache emptied) and warm per GPU cell."""

from __future__ import annotations

from harness.bench.run import BenchOptions, run_bench
from harness.report.assemble import load_report
from harness.report.html import render_html
from harness.store import Store


def test_gpu_cells_get_cold_and_warm_init(bench_model, phones, tmp_path):
    store_path = tmp_path / "r.db"
    opts = BenchOptions(model=str(bench_model), devices=(phones[0].serial,), store=str(store_path),
                        runs=2, warmup=1, repeats=1, images=1, variants="softmax-fp32",
                        delegates="cpu,gpu", gpu_init=True)  # fmt: skip
    out = run_bench(opts)
    assert out.status == "complete"
    with Store(store_path) as store:
        cells = {c.delegate: c for c in store.cells(out.run_id)}
        gpu, cpu = cells["gpu"].latency, cells["cpu"].latency
        assert gpu.kernel_cache == "written"
        assert gpu.init_cold_ms > 0 and gpu.init_warm_ms > 0
        assert cpu.init_cold_ms is None  # only GPU cells have a kernel cache
        html = render_html(load_report(store, [out.run_id]))
    assert "GPU init: cold vs warm" in html
