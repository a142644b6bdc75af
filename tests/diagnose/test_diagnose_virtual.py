"""harness diagnose on virtual phones (through the real adb server): each fault is detected where
its mechanism acts, the op is named, and the recommendation is correct on the failing delegate."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import typer
from rich.console import Console
from typer.testing import CliRunner

from harness.diagnose import run_diagnose
from harness.diagnose.commands import diagnose
from harness.diagnose.exposure import FP16_EXP_LIMIT
from harness.diagnose.render import render
from harness.store import Store
from harness.virtual import manager
from tests.diagnose.conftest import options


def _matrix(device: dict) -> dict[tuple[str, str], dict]:
    return {(c["head"], c["delegate"]): c for c in device["matrix"]}


def _loc(device: dict, variant_prefix: str, delegate: str) -> dict:
    for loc in device["localizations"]:
        if loc["variant"].startswith(variant_prefix) and loc["delegate"] == delegate:
            return loc
    raise AssertionError(f"no localization of {variant_prefix} on {delegate}: {device}")


def test_softmax_overflow_on_sm_g973f(diag_folders, start_phone, tmp_path):
    phone = start_phone("SM-G973F")  # the profile's default: the 2019 OpenGL delegate
    store = tmp_path / "r.db"
    diagnosis = run_diagnose(options(diag_folders["hot"], phone, store))
    [device] = diagnosis["devices"]
    assert device["emulated_faults"] == [] and device["gpu_delegate"] == "gl-2019"
    largest = diagnosis["largest_logit"]
    assert largest["exposed"] and largest["value"] > FP16_EXP_LIMIT and largest["over"] > 0
    m = _matrix(device)
    assert m["softmax", "gpu"]["verdict"] == "nan"  # FP16 only: NaN where logits pass 11.09
    assert m["softmax", "gpu"]["nan"] > 0
    for head in ("softmax", "sigmoid", "logits"):
        assert m[head, "cpu"]["verdict"] == "ok"
        assert m[head, "gpu-fp32"]["verdict"] == "ok"
    assert m["sigmoid", "gpu"]["verdict"] == "ok" and m["logits", "gpu"]["verdict"] == "ok"
    loc = _loc(device, "softmax", "gpu")
    culprit = loc["culprit"]
    assert culprit["op"] == "SOFTMAX" and culprit["nonfinite"] > 0
    assert loc["before"] and all(not t["diverges"] for t in loc["before"])  # its input is fine
    assert loc["mode"] == "softmax-fp16-overflow" and "gl-2019" in loc["explanation"]
    assert any("FP32" in r for r in device["remedies"])
    assert any("newer TFLite runtime" in r for r in device["remedies"])
    rec = device["recommendation"]["recommended"]
    assert rec["delegate"] == "gpu" and rec["variant"].split("-")[0] in ("sigmoid", "logits")
    assert rec["iou"] >= 0.99 and rec["latency_ms"] > 0
    kinds = {a["kind"]: a for a in device["recommendation"]["alternatives"]}
    assert kinds["fp32"]["verdict"] == "ok" and kinds["cpu-only"]["verdict"] == "ok"
    assert kinds["logits+cpu-threshold"]["measured"]
    with Store(store) as s:  # stored for harness report
        assert s.diagnosis(diagnosis["run_id"])["devices"][0]["matrix"] == device["matrix"]
    console = Console(record=True, width=200)
    render(diagnosis, console)
    text = console.export_text()
    assert "first diverging tensor: SOFTMAX" in text and "Ship: " in text
    assert f"largest logit measured (softmax input, desktop): {largest['value']:.2f}" in text


def test_sm_g973u_reports_no_failure(diag_folders, start_phone, tmp_path):
    phone = start_phone("SM-G973U")  # Adreno: the current delegate (runtime not established)
    diagnosis = run_diagnose(options(diag_folders["hot"], phone, tmp_path / "r.db"))
    [device] = diagnosis["devices"]
    assert device["emulated_faults"] == [] and device["gpu_delegate"] == "current"
    assert device["failures"] == 0 and not device["localizations"]
    assert all(c["verdict"] == "ok" for c in device["matrix"])
    assert device["summary"].startswith("no failure")


def test_model_below_the_range_is_not_exposed(diag_folders, start_phone, tmp_path):
    phone = start_phone("SM-G973F")
    diagnosis = run_diagnose(options(diag_folders["calm"], phone, tmp_path / "r.db"))
    [device] = diagnosis["devices"]
    assert device["gpu_delegate"] == "gl-2019"  # the kernel that overflows is there ...
    assert all(c["verdict"] == "ok" for c in device["matrix"])  # ... but nothing triggers it
    largest = diagnosis["largest_logit"]
    assert not largest["exposed"] and largest["value"] < FP16_EXP_LIMIT
    assert "not exposed" in device["summary"] and f"{largest['value']:.2f}" in device["summary"]
    reasons = [line for line in diagnosis["exposure_summary"] if "SOFTMAX" in line]
    assert reasons and all("cannot overflow FP16" in r and "not exposed" in r for r in reasons)
    assert not device["remedies"]  # nothing failed: no fix to recommend


def test_newer_delegate_proves_the_runtime_remedy(diag_folders, start_phone, tmp_path):
    """Two virtual SM-G973F in one run: the 2019 delegate fails, the current one is right."""
    old = start_phone("SM-G973F")
    new = start_phone("SM-G973F", delegate="current")
    assert old.delegate == "gl-2019" and new.delegate == "current"  # harness virtual list
    assert {r.serial: r.delegate for r in manager.list_virtual()}[new.serial] == "current"
    opts = options(diag_folders["hot"], old, tmp_path / "r.db", delegates="cpu,gpu")
    diagnosis = run_diagnose(replace(opts, devices=(old.serial, new.serial), heads="softmax"))
    by_serial = {d["serial"]: d for d in diagnosis["devices"]}
    failing, fixed = by_serial[old.serial], by_serial[new.serial]
    assert fixed["gpu_delegate"] == "current" and fixed["failures"] == 0
    assert _matrix(failing)["softmax", "gpu"]["verdict"] == "nan"
    [runtime] = [
        a for a in failing["recommendation"]["alternatives"] if a["kind"] == "newer-runtime"
    ]
    assert runtime["verdict"] == "ok" and runtime["delegate"] == "gpu"
    assert f"current on {new.serial}" in runtime["note"]


def test_first_opencl_delegate_is_right_on_cl_and_wrong_on_gl(diag_folders, start_phone, tmp_path):
    phone = start_phone("SM-G973F", delegate="cl-v2")
    opts = options(diag_folders["hot"], phone, tmp_path / "r.db", delegates="gpu-cl,gpu-gl")
    diagnosis = run_diagnose(replace(opts, heads="softmax"))
    [device] = diagnosis["devices"]
    m = _matrix(device)
    assert m["softmax", "gpu-cl"]["verdict"] == "ok"  # float exp: safe to ~88.7
    assert m["softmax", "gpu-gl"]["verdict"] == "nan"  # its GL fallback: the old GL kernel
    assert any("--gpu_backend=cl" in r for r in device["remedies"])


def test_reduction_exposure_is_reported_but_not_emulated(reduction, start_phone, tmp_path):
    """LiteRT 9249's SUM overflow is on the ML Drift backend; the TFLite delegate's reduce
    kernel accumulates in float, so the virtual phone computes the MEAN right."""
    phone = start_phone("SM-G973F")
    diagnosis = run_diagnose(options(reduction, phone, tmp_path / "r.db", delegates="cpu,gpu"))
    [device] = diagnosis["devices"]
    [(variant, findings)] = diagnosis["exposure"].items()
    assert any(f["mode"] == "fp16-reduction-overflow" and f["exposed"] for f in findings)
    assert all(c["verdict"] == "ok" for c in device["matrix"])


def test_softmax_in_the_middle_of_the_graph(mid_softmax, start_phone, tmp_path):
    phone = start_phone("SM-G973F")
    diagnosis = run_diagnose(options(mid_softmax, phone, tmp_path / "r.db", delegates="cpu,gpu"))
    [device] = diagnosis["devices"]
    by_delegate = {c["delegate"]: c for c in device["matrix"]}
    assert by_delegate["cpu"]["verdict"] == "ok" and by_delegate["gpu"]["verdict"] == "nan"
    loc = device["localizations"][0]
    ops = [c["op"] for c in [loc["culprit"], *loc["after"]]]
    assert ops[0] == "SOFTMAX" and "CONV_2D" in ops[1:]  # NaN flows on through the conv
    assert loc["culprit"]["op_index"] < max(t["op_index"] for t in loc["after"])


def test_opencl_missing_fails_cl_and_falls_back_to_gl(diag_folders, start_phone, tmp_path):
    phone = start_phone("SM-G973U", faults=("opencl-missing",))
    folder = tmp_path / "calm"
    shutil.copytree(diag_folders["calm"], folder)  # argmax is built on the fly in this copy
    app = typer.Typer()
    app.command()(diagnose)
    args = ["--model", str(folder), "--device", phone.serial, "--json", "--store"]
    args += [str(tmp_path / "r.db"), "--delegates", "gpu,gpu-cl", "--heads", "sigmoid,argmax"]
    args += ["--images", "2", "--runs", "2", "--repeats", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    diagnosis = json.loads(result.stdout)
    [device] = diagnosis["devices"]
    assert [v["id"] for v in diagnosis["variants"] if v["built"]] == ["argmax-fp32"]
    m = _matrix(device)
    for head in ("sigmoid", "argmax"):
        cl = m[head, "gpu-cl"]
        assert cl["verdict"] == "delegate-failed" and "libOpenCL.so" in cl["reason"]
    assert m["sigmoid", "gpu"]["verdict"] == "ok" and m["sigmoid", "gpu"]["cl_to_gl_fallback"]
    argmax = m["argmax", "gpu"]  # values right, but ARG_MAX and CAST fell back to the CPU
    assert argmax["verdict"] == "partial" and argmax["delegation"] == "partial"
    assert [op.split(":")[0] for op in argmax["fallback_ops"]] == ["ARG_MAX", "CAST"]
    assert any("fell back to OpenGL" in n for n in device["notes"])
    assert device["recommendation"]["recommended"]["variant"] == "sigmoid-fp32"  # full first
