"""Bad input everywhere a user types: one-line errors, documented exit codes, nothing half
written (no store, no run, no phone left behind), and device output that is not UTF-8."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ExitCode
from harness.virtual import manager
from tests.conftest import CORRECT_GPU, free_port
from tests.reliability.conftest import one_line_error, run_bench_cli, stored_cells

WEIRD = "a b;rm -rf x $(touch PWNED) 'q"  # spaces and shell metacharacters in a path part


def harness_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def bad_phone(adb_server):
    record = manager.start("SM-G973F", port=free_port(), servers=[adb_server], faults=CORRECT_GPU)
    yield record
    if manager.find(record.serial):
        manager.stop(record.serial)


@pytest.fixture(scope="module")
def bad_models(bench_model, tmp_path_factory):
    """Broken models, each at a path with spaces and shell metacharacters."""
    base = tmp_path_factory.mktemp("bad") / WEIRD
    base.mkdir()
    good = (bench_model / "variants" / "sigmoid-fp32.tflite").read_bytes()
    models = {
        "truncated": good[: len(good) // 2],
        "cut-header": good[:7],
        "text": b"this is not a model\n",
        "empty": b"",
        "random": os.urandom(4096),
        "corrupt": good[:8] + bytes(b ^ 0xA5 for b in good[8:400]) + good[400:],
    }
    paths = {}
    for name, data in models.items():
        paths[name] = base / f"{name} model;x.tflite"
        paths[name].write_bytes(data)
    tampered = base / "tampered model"
    shutil.copytree(bench_model, tampered, ignore=shutil.ignore_patterns("reference"))
    with open(tampered / "variants" / "softmax-fp32.tflite", "ab") as handle:
        handle.write(b"x")
    paths["tampered"] = tampered
    broken = base / "broken manifest"
    shutil.copytree(bench_model, broken, ignore=shutil.ignore_patterns("reference"))
    (broken / "variants.json").write_text("{not json")
    paths["manifest"] = broken
    return paths


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        ("truncated", "corrupt or truncated"),
        ("cut-header", "not a TFLite model"),
        ("text", "not a TFLite model"),
        ("empty", "not a TFLite model"),
        ("random", "not a TFLite model"),
        ("corrupt", "corrupt or truncated"),
        ("tampered", "changed since conversion"),
        ("manifest", "corrupt manifest"),
    ],
)
def test_bad_models_are_one_line_exit_7(bad_models, bad_phone, tmp_path, model, needle):
    store = tmp_path / WEIRD / "r.db"
    result = run_bench_cli(bad_models[model], bad_phone.serial, store, timeout=120)
    assert result.returncode == ExitCode.MODEL, result.stderr
    assert one_line_error(result.stderr) and needle in result.stderr
    assert not store.exists()  # nothing half written


def test_inspect_of_a_corrupt_model(bad_models):
    result = harness_cli("inspect", bad_models["truncated"])
    assert result.returncode == ExitCode.MODEL and one_line_error(result.stderr)


def test_bad_bench_options_and_inputs(bench_model, bad_phone, tmp_path):
    store = tmp_path / WEIRD / "r.db"
    garbage = tmp_path / "not a store.db"
    garbage.write_bytes(b"garbage, not SQLite")
    junk_eval = tmp_path / "junk eval"
    (junk_eval / "images").mkdir(parents=True)
    (junk_eval / "masks").mkdir()
    (junk_eval / "images" / "a.png").write_bytes(b"not a png")
    (junk_eval / "masks" / "a.png").write_bytes(b"not a png")
    serial = bad_phone.serial
    cases = [
        (["--images", "0"], store, ExitCode.USAGE, "--images must be at least 1"),
        (["--runs", "0"], store, ExitCode.USAGE, "--runs must be at least 1"),
        (["--timeout", "0"], store, ExitCode.USAGE, "--timeout must be more than 0"),
        (["--reconnect-wait", "-1"], store, ExitCode.USAGE, "--reconnect-wait"),
        (["--delegates", "tpu"], store, ExitCode.USAGE, "tpu"),
        (["--eval-set", tmp_path / WEIRD / "none"], store, ExitCode.USAGE, "not a folder"),
        (["--eval-set", junk_eval], store, ExitCode.USAGE, "junk eval"),
        (["--resume", "nope"], store, ExitCode.USAGE, "no such results store"),
        ([], garbage, ExitCode.USAGE, "not a harness results store"),
    ]
    for extra, target, code, needle in cases:
        result = run_bench_cli(bench_model, serial, target, *extra, timeout=120)
        assert result.returncode == code, (extra, result.stderr)
        assert one_line_error(result.stderr) and needle in result.stderr, (extra, result.stderr)
        assert not store.exists(), extra  # nothing half written
    assert garbage.read_bytes() == b"garbage, not SQLite"  # left as it was


def test_unknown_device_profile_and_run(bench_model, bad_phone, tmp_path):
    store = tmp_path / "r.db"
    unknown = run_bench_cli(bench_model, "SM-N999X", store)
    assert unknown.returncode == ExitCode.DEVICE_NOT_FOUND and one_line_error(unknown.stderr)
    assert not store.exists()
    ok = run_bench_cli(bench_model, bad_phone.serial, store, "--variants", "sigmoid-fp16")
    assert ok.returncode == 0, ok.stderr
    again = run_bench_cli(bench_model, bad_phone.serial, store, "--resume", "no-such-run")
    assert again.returncode == ExitCode.USAGE and "no run or tag" in again.stderr
    assert one_line_error(again.stderr)
    before = {r.serial for r in manager.list_virtual()}
    for args, code, needle in [
        (["virtual", "start", "--profile", "SM-X999"], ExitCode.USAGE, "unknown device profile"),
        (["virtual", "start", "--profile", "SM-G973F", "--chaos", "melt"], ExitCode.USAGE, "melt"),
        (["virtual", "start", "--profile", "SM-G973F", "--chaos", "drop=1x"], ExitCode.USAGE, ""),
        (["virtual", "chaos", bad_phone.serial, "offline=-3"], ExitCode.USAGE, "offline"),
        (["virtual", "chaos", "127.0.0.1:1", "none"], ExitCode.VIRTUAL, "no running virtual"),
        (["probe", "--device", "SM-N999X"], ExitCode.DEVICE_NOT_FOUND, "no device matches"),
    ]:
        result = harness_cli(*args)
        assert result.returncode == code, (args, result.stderr)
        assert one_line_error(result.stderr) and needle in result.stderr, (args, result.stderr)
    assert {r.serial for r in manager.list_virtual()} == before  # no phone left half started


def test_bad_toml_policies(tmp_path):
    folder = tmp_path / WEIRD
    folder.mkdir()
    cases = {
        "syntax.toml": ('[[rule]]\nname = "x"\nmax_latency_ms = \n', "syntax.toml:3"),
        "type.toml": ('[[rule]]\nname = "x"\nmin_iou = "high"\n', "min_iou"),
        "unknown.toml": ('[[rule]]\nname = "x"\nmin_iuo = 0.9\n', "min_iuo"),
        "binary.toml": (b"\xff\xfe[[rule]]\x00".decode("latin-1"), "policy"),
    }
    store = tmp_path / "r.db"
    for name, (text, needle) in cases.items():
        policy = folder / name
        policy.write_text(text, encoding="latin-1")
        result = harness_cli("gate", "--policy", policy, "--store", store)
        assert result.returncode == ExitCode.USAGE, (name, result.stderr)
        assert one_line_error(result.stderr), (name, result.stderr)
        assert needle in result.stderr, (name, result.stderr)
    missing = harness_cli("gate", "--policy", folder / "missing.toml", "--store", store)
    assert missing.returncode == ExitCode.USAGE and one_line_error(missing.stderr)


# -- device output that is not UTF-8 ---------------------------------------------------------

EVIL_MODEL = b"SM-G973F\xff\xfe<script>alert(1)</script>"
EVIL_GPU = b"Mali-G76\xed\xa0\x80<img src=x onerror=alert(2)>"


def test_non_utf8_device_output_is_read_and_escaped(bench_model, start_phone, tmp_path):
    """getprop and dumpsys print invalid UTF-8 (and HTML): probe, bench and report cope, and
    the HTML report escapes it."""
    record = start_phone("SM-G973F", faults=CORRECT_GPU)
    root = Path(record.root)
    props = root / ".harness" / "props"
    text = props.read_bytes()
    text = text.replace(
        b"[ro.product.model]: [SM-G973F]", b"[ro.product.model]: [" + EVIL_MODEL + b"]"
    )
    props.write_bytes(text + b"[ro.harness.junk\xc3]: [\x80\x81\x82]\n")
    (root / ".harness" / "dumpsys" / "SurfaceFlinger").write_bytes(
        b"GLES: ARM, " + EVIL_GPU + b", OpenGL ES 3.2\n"
    )
    (root / ".harness" / "dumpsys" / "battery").write_bytes(b"  level: 8\xff7\n  temperature: x\n")
    probe = harness_cli("probe", "--device", record.serial, "--json")
    assert probe.returncode == 0, probe.stderr
    info = json.loads(probe.stdout)
    assert "\ufffd" in info["model"] and "<script>" in info["model"]
    devices = harness_cli("devices", "--json")
    assert devices.returncode == 0, devices.stderr
    store = tmp_path / "r.db"
    bench = run_bench_cli(bench_model, record.serial, store, "--variants", "sigmoid-fp32")
    assert bench.returncode == 0, bench.stderr
    run, cells = stored_cells(store)
    assert cells and all(c.measured for c in cells)
    out = tmp_path / "report"
    report = harness_cli("report", "--store", store, "--out", out)
    assert report.returncode == 0, report.stderr
    html = next(out.glob("*.html")).read_text()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    # The model name is shown, escaped: the precondition is that it was read with its markup.
    assert "<script>alert(1)</script>" in info["model"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_eval_images_of_other_sizes(bench_model, bad_phone, tmp_path):
    """Eval images of any size and channel count are resized to the model's input; an image
    whose mask has another size is a one-line error, before anything is written."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    folder = tmp_path / f"eval {WEIRD}"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for name, shape in (("wide", (10, 40, 3)), ("gray", (300, 200)), ("tiny", (3, 3, 3))):
        cv2.imwrite(str(folder / "images" / f"{name}.png"), rng.integers(0, 255, shape, np.uint8))
        mask = rng.integers(0, 2, shape[:2], np.uint8) * 255
        cv2.imwrite(str(folder / "masks" / f"{name}.png"), mask)
    store = tmp_path / "r.db"
    args = ("--eval-set", folder, "--images", "3", "--variants", "sigmoid-fp32")
    ok = run_bench_cli(bench_model, bad_phone.serial, store, *args)
    assert ok.returncode == 0, ok.stderr
    _, cells = stored_cells(store)
    assert cells and all(c.measured and c.accuracy.n == 3 for c in cells)
    cv2.imwrite(str(folder / "masks" / "wide.png"), np.zeros((11, 40), np.uint8))
    bad = run_bench_cli(bench_model, bad_phone.serial, tmp_path / "b.db", *args)
    assert bad.returncode == ExitCode.USAGE and one_line_error(bad.stderr)
    assert "size mismatch" in bad.stderr and not (tmp_path / "b.db").exists()
