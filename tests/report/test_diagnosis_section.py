"""`harness report` shows the diagnosis `harness diagnose` stored for a run."""

from __future__ import annotations

from harness.report.assemble import load_report, report_json
from harness.report.html import render_html
from harness.report.markdown import render_markdown

DIAGNOSIS = {
    "schema": 1,
    "largest_logit": {
        "value": 17.77,
        "limit": 11.09,
        "over": 9525,
        "of": 262144,
        "exposed": True,
        "variant": "softmax-fp32",
        "op": "SOFTMAX#70",
    },
    "devices": [
        {
            "serial": "127.0.0.1:7401",
            "model": "SM-G973F",
            "virtual": True,
            "soc": "Exynos 9820",
            "gpu": "Mali-G76",
            "summary": "softmax-fp32: NaN/Inf on GPU FP16; first diverging: SOFTMAX#70",
            "localizations": [
                {
                    "variant": "softmax-fp32",
                    "delegate": "gpu",
                    "explanation": "FP16 softmax <overflow>",
                    "culprit": {
                        "op": "SOFTMAX",
                        "op_index": 70,
                        "tensor": 142,
                        "name": "Identity",
                        "nonfinite": 3276,
                        "max_abs": 0.0006,
                    },
                    "before": [{"op": "RESIZE_BILINEAR", "op_index": 69, "max_abs": 0.0071}],
                    "after": [],
                }
            ],
            "recommendation": {"text": "logits head on GPU FP16: IoU 1.000, 0.50 ms"},
            "notes": [],
        }
    ],
}


def test_diagnosis_is_in_html_markdown_and_json(store, bench):
    run_id = bench.run()
    store.add_diagnosis(run_id, DIAGNOSIS)
    report = load_report(store, [run_id])
    html = render_html(report)
    assert "Diagnosis (harness diagnose)" in html
    assert "SOFTMAX#70" in html and "RESIZE_BILINEAR#69" in html and "3276 NaN/Inf" in html
    assert "logits head on GPU FP16: IoU 1.000, 0.50 ms" in html
    assert "FP16 softmax &lt;overflow&gt;" in html  # escaped like every other string
    md = render_markdown(report)
    assert "ship: logits head on GPU FP16" in md and "exposed to the FP16 softmax overflow" in md
    assert report_json(report)["diagnoses"][run_id]["largest_logit"]["value"] == 17.77


def test_no_diagnosis_no_section(store, bench):
    report = load_report(store, [bench.run()])
    assert "Diagnosis (harness diagnose)" not in render_html(report)
    assert "**Diagnosis**" not in render_markdown(report)


def test_diagnosis_names_the_gpu_delegate_and_what_fixes_it(store, bench):
    run_id = bench.run()
    device = dict(DIAGNOSIS["devices"][0], gpu_delegate="gl-2019")
    device["remedies"] = ["FP32 (--gpu_precision_loss_allowed=false): overflows past ~88.7"]
    device["recommendation"] = {
        "text": "sigmoid head on GPU FP16: IoU 1.000, 3.48 ms",
        "alternatives": [
            {
                "kind": "newer-runtime",
                "config": "softmax head on GPU FP16",
                "label": "ok",
                "note": "GPU delegate current on 127.0.0.1:7402 (same model)",
            }
        ],
    }
    store.add_diagnosis(run_id, dict(DIAGNOSIS, devices=[device]))
    report = load_report(store, [run_id])
    html = render_html(report)
    assert "Mali-G76, GPU delegate gl-2019" in html
    assert "Newer TFLite runtime: softmax head on GPU FP16 is <b>ok</b>" in html
    assert "What fixes it (sources, GPU delegate gl-2019)" in html and "~88.7" in html
    md = render_markdown(report)
    assert "SM-G973F (virtual), GPU delegate gl-2019:" in md and "fix: FP32" in md
