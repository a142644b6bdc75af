"""harness bench on virtual phones through the real adb server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from harness.bench.run import BenchOptions, run_bench
from harness.convert.variants import read_manifest
from harness.errors import ExitCode
from harness.store import Store
from harness.virtual import manager


def _opts(model, phones, store, **kw) -> BenchOptions:
    base = dict(
        model=str(model),
        devices=tuple(p.serial for p in phones),
        store=str(store),
        runs=3,
        warmup=1,
        repeats=1,
        images=2,
        delegates="cpu,gpu,gpu-fp32",
    )
    base.update(kw)
    return BenchOptions(**base)


def test_every_cell_recorded_with_latency_and_accuracy(bench_model, phones, tmp_path):
    store_path = tmp_path / "r.db"
    out = run_bench(_opts(bench_model, phones, store_path, variants="softmax-fp32,sigmoid-fp16"))
    assert out.status == "complete" and len(out.cells) == 2 * 2 * 3
    with Store(store_path) as store:
        cells = store.cells(out.run_id)
        assert len(cells) == 12 and all(c.measured for c in cells)
        for c in cells:
            assert c.latency.avg_ms > 0 and len(c.latency.invocation_avg_ms) == 1
            assert c.accuracy.reference.iou >= 0.99, c
            assert c.accuracy.signature == "ok"
            assert c.thermal["before"]["zones"] and len(c.thermal["after"]["cpu_khz"]) == 8
            expected = "none" if c.delegate == "cpu" else "full"
            assert c.delegation.verdict == expected and c.delegation.virtual is True
        devices = store.devices(out.run_id)
        assert {d["info"]["soc"] for d in devices} == {"Exynos 9820", "Snapdragon 855"}
        assert all(d["virtual"] for d in devices)
    # A second identical run pushes nothing: binary, models and inputs are hash-cached.
    again = run_bench(_opts(bench_model, phones, store_path, variants="softmax-fp32,sigmoid-fp16"))
    assert again.bytes_sent == 0 and again.bytes_skipped > 0 and again.status == "complete"


def test_third_party_tflite_without_manifest(bench_model, phones, tmp_path):
    record = read_manifest(bench_model).get("sigmoid-fp32")
    lone = tmp_path / "selfie_segmenter.tflite"
    shutil.copy(bench_model / record.file, lone)  # no variants.json next to it
    out = run_bench(_opts(lone, phones[:1], tmp_path / "r.db", delegates="cpu,gpu"))
    assert out.status == "complete" and len(out.cells) == 2
    for cell in out.cells:
        assert cell.variant_id == "selfie_segmenter"
        assert cell.accuracy.reference.iou >= 0.99
        assert cell.accuracy.reference.sum_to_one_err is None  # 1-channel probability


def test_crash_hang_and_wrong_size_are_recorded(bench_model, phones, tmp_path):
    manifest = read_manifest(bench_model)
    sha = {v.id: v.sha256[:16] for v in manifest.variants}
    phone = phones[0]
    manager.set_chaos(
        phone.serial,
        [
            {"match": sha["softmax-fp32"], "action": "crash", "when": "any"},
            {"match": sha["sigmoid-fp32"], "action": "hang", "when": "latency"},
            {"match": sha["logits-fp32"], "action": "truncate", "when": "accuracy"},
        ],
    )
    try:
        out = run_bench(
            _opts(
                bench_model,
                phones[:1],
                tmp_path / "r.db",
                delegates="cpu",
                variants="*-fp32,softmax-fp16",
                timeout=3,
            )
        )
    finally:
        manager.set_chaos(phone.serial, [])
    reasons = {c.variant_id: (c.status.value, c.reason) for c in out.cells}
    assert out.status == "partial" and len(out.cells) == 4
    assert (
        reasons["softmax-fp32"][0] == "failed" and "crashed (SIGSEGV" in reasons["softmax-fp32"][1]
    )
    assert reasons["sigmoid-fp32"][0] == "failed" and "timed out" in reasons["sigmoid-fp32"][1]
    assert (
        reasons["logits-fp32"][0] == "failed" and "wrong output size" in reasons["logits-fp32"][1]
    )
    assert reasons["softmax-fp16"] == ("ok", "")  # the run went on past the failures


def _bench_cli(model, phone, store, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "bench",
            "--model",
            str(model),
            "--device",
            phone.serial,
            "--store",
            str(store),
            "--runs",
            "2",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--images",
            "1",
            "--delegates",
            "cpu,gpu",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        # As from a terminal: a background launcher may have set SIGINT to "ignore".
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_keeps_finished_cells_and_resume_completes(bench_model, phones, tmp_path):
    store_path = tmp_path / "r.db"
    proc = _bench_cli(bench_model, phones[1], store_path)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:  # wait for 2 finished cells
        if store_path.exists():
            with Store(store_path) as store:
                runs = store.runs()
                done = len(store.cells(runs[-1]["id"])) if runs else 0
        if done >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    with Store(store_path) as store:
        (run,) = store.runs()
        kept = store.cells(run["id"])
        assert run["status"] == "interrupted" and len(kept) >= 2 and all(c.measured for c in kept)
    total = 6 * 2  # 6 variants x cpu,gpu
    resumed = _bench_cli(bench_model, phones[1], store_path, "--resume", run["id"], "--json")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    payload = json.loads(out)
    assert payload["run"] == run["id"] and payload["status"] == "complete"
    assert len(payload["cells"]) == total - len(kept)  # only what was missing was measured
    with Store(store_path) as store:
        cells = store.cells(run["id"])
        assert len(cells) == total and all(c.measured for c in cells)
        assert len({(c.serial, c.variant_sha256, c.delegate) for c in cells}) == total


def test_bad_input_is_one_line(bench_model, phones, tmp_path):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "harness", "bench", *args, "--store", str(tmp_path / "r.db")],
            capture_output=True,
            text=True,
            env=dict(os.environ),
        )

    for args, code, text in [
        (["--model", str(tmp_path / "nope")], ExitCode.USAGE, "no such model folder"),
        (["--model", str(bench_model), "--delegates", "tpu"], ExitCode.USAGE, "tpu"),
        (["--model", str(bench_model), "--variants", "zzz*"], ExitCode.USAGE, "matches no variant"),
        (
            ["--model", str(bench_model), "--device", "SM-N999"],
            ExitCode.DEVICE_NOT_FOUND,
            "no device",
        ),
    ]:
        run = cli(*args)
        assert run.returncode == code, (args, run.stderr)
        assert text in run.stderr and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_summary_starts_its_own_line_after_the_live_table_in_a_log(bench_model, phones, tmp_path):
    """Output to a pipe or log file (no terminal): rich ends a Live without a newline, so the
    bench ends it; the table's last line and the summary line are two lines."""
    proc = _bench_cli(
        bench_model,
        phones[1],
        tmp_path / "r.db",
        "--variants",
        "sigmoid-fp32",
        "--delegates",
        "cpu",
    )
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    summary = [i for i, ln in enumerate(lines) if "cells measured" in ln]
    assert summary and lines[summary[0]].startswith("run ")
    assert lines[summary[0] - 1].rstrip().endswith("┘")  # the table's bottom edge, alone
