"""Options that once got through (issue 13): infinite and NaN durations, zero threads, huge
image counts, empty delegate lists. Each is a one-line error, exit 2, before anything is
created; a bug inside a device worker fails its cells instead of dropping them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.bench import checks
from harness.bench.run import BenchOptions, run_bench
from harness.errors import ExitCode, UsageError
from tests.reliability.conftest import one_line_error


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


BENCH_CASES = [
    (["--timeout", "inf"], "--timeout"),
    (["--timeout", "1e10"], "--timeout must be at most"),
    (["--timeout", "nan"], "--timeout"),
    (["--cooldown", "nan"], "--cooldown"),
    (["--wait", "nan"], "--wait"),
    (["--wait", "inf"], "--wait"),
    (["--reconnect-wait", "nan"], "--reconnect-wait"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--threads", "-2"], "--threads must be at least 1"),
    (["--images", "100000"], "--images must be at most"),
    (["--delegates", ""], "names no delegate"),
    (["--delegates", ",,,"], "names no delegate"),
]


@pytest.mark.parametrize(
    ("extra", "needle"), BENCH_CASES, ids=[" ".join(c[0]) for c in BENCH_CASES]
)
def test_bad_bench_option_is_one_line_exit_2(bench_model, tmp_path, extra, needle):
    store = tmp_path / "r.db"
    result = _cli("bench", "--model", bench_model, "--device", "none", "--store", store, *extra)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert one_line_error(result.stderr) and needle in result.stderr, result.stderr
    assert not store.exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--timeout", "inf"], "--timeout"), (["--tolerance", "nan"], "--tolerance")],
    ids=["timeout-inf", "tolerance-nan"],
)
def test_bad_diagnose_option_is_one_line_exit_2(bench_model, tmp_path, extra, needle):
    store = tmp_path / "r.db"
    before = sorted(p.name for p in bench_model.iterdir())
    result = _cli("diagnose", "--model", bench_model, "--device", "none", "--store", store, *extra)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert one_line_error(result.stderr) and needle in result.stderr, result.stderr
    assert not store.exists() and sorted(p.name for p in bench_model.iterdir()) == before


def test_eval_set_memory_is_checked_before_it_is_made():
    checks.eval_memory(10000, 128, 128, 3)  # 0.46 GiB: fine
    with pytest.raises(UsageError, match="needs 18.3 GiB"):
        checks.eval_memory(100000, 256, 256, 3)


def test_a_worker_bug_fails_its_cells_instead_of_dropping_them(
    bench_model, phone, tmp_path, monkeypatch
):
    """What ``--timeout inf`` once did (OverflowError in the worker): cells neither measured
    nor recorded, run 'complete', exit 0. Now every cell is stored failed, the run partial."""
    from harness.bench import worker as worker_mod

    def broken(*_args, **_kwargs):
        raise OverflowError("timeout value is too large")

    monkeypatch.setattr(worker_mod, "measure_cell", broken)
    store = tmp_path / "r.db"
    opts = BenchOptions(
        model=str(bench_model),
        devices=(phone.serial,),
        variants="sigmoid-fp32",
        delegates="cpu,gpu",
        runs=1,
        warmup=0,
        repeats=1,
        images=1,
        store=str(store),
    )
    outcome = run_bench(opts)
    assert outcome.status == "partial"
    assert len(outcome.cells) == 2 and not any(c.measured for c in outcome.cells)
    assert all("internal error: OverflowError" in c.reason for c in outcome.cells)


# -- resume pins its plan ----------------------------------------------------------------------


def _stored_run(path, model: str, status: str = "interrupted") -> str:
    from dataclasses import asdict

    from harness.store import Store

    options = BenchOptions(model=model, runs=2, warmup=0, repeats=1, images=1).plan_config()
    with Store(path) as store:
        run = store.create_run({"options": options, "devices": ["127.0.0.1:7999"]})
        if status != "running":
            store.finish_run(run, status)
    assert asdict(BenchOptions(model=model))["runs"] == 20  # the CLI default differs from 2
    return run


RESUME_CASES = [
    (["--device", "127.0.0.1:7001"], "device '127.0.0.1:7001' is not in the run's plan"),
    (["--runs", "5"], "--runs 5 differs from the run's plan (2)"),
    (["--delegates", "gpu"], "--delegates gpu differs from the run's plan (None)"),
    (["--images", "3"], "--images 3 differs"),
]


@pytest.mark.parametrize(("extra", "needle"), RESUME_CASES, ids=[c[0][0] for c in RESUME_CASES])
def test_resume_keeps_its_plan(tmp_path, extra, needle):
    store = tmp_path / "r.db"
    model = str(tmp_path / "m.tflite")
    run = _stored_run(store, model)
    before = store.read_bytes()
    result = _cli("bench", "--model", model, "--store", store, "--resume", run, *extra)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert one_line_error(result.stderr) and needle in result.stderr, result.stderr
    assert store.read_bytes() == before


def test_resume_with_another_model_is_refused(tmp_path):
    store = tmp_path / "r.db"
    run = _stored_run(store, str(tmp_path / "m.tflite"))
    result = _cli("bench", "-m", tmp_path / "other.tflite", "--store", store, "--resume", run)
    assert result.returncode == ExitCode.USAGE and one_line_error(result.stderr)
    assert "--model" in result.stderr and "differs from the run's plan" in result.stderr


def test_resume_of_a_run_whose_process_lives_is_refused(tmp_path):
    """The run was created by this (live) test process: another process may not resume it."""
    store = tmp_path / "r.db"
    model = str(tmp_path / "m.tflite")
    run = _stored_run(store, model, status="running")
    result = _cli("bench", "--model", model, "--store", store, "--resume", run)
    assert result.returncode == ExitCode.DEVICE_BUSY, result.stderr
    assert one_line_error(result.stderr) and f"pid {os.getpid()}" in result.stderr


def test_resume_plan_uses_the_stored_devices_and_options():
    import socket

    defaults = {"runs": 20, "delegates": None, "devices": (), "model": ""}
    run = {
        "status": "interrupted",
        "host": socket.gethostname(),
        "pid": 1,
        "config": {"options": {"model": "m", "runs": 2, "delegates": "cpu"}, "devices": ["A"]},
    }
    given = {"model": "m", "runs": 20, "delegates": None, "devices": ()}
    plan = checks.resume_plan("r", run, given, defaults)
    assert plan == {"model": "m", "runs": 2, "delegates": "cpu", "devices": ("A",), "adb": ()}
    assert checks.resume_plan("r", run, {**given, "runs": 2, "devices": ("A",)}, defaults)
    with pytest.raises(UsageError, match="--model x differs"):
        checks.resume_plan("r", run, {**given, "model": "x"}, defaults)
    # A plan that names each phone with its adb server (schema 3) resumes through those
    # servers, one serial listed by two servers as two devices.
    ids = [{"server": "h1:5037", "serial": "A"}, {"server": "h2:5037", "serial": "A"}]
    run["config"]["device_ids"] = ids
    plan = checks.resume_plan("r", run, given, defaults)
    assert plan["devices"] == ("A@h1:5037", "A@h2:5037")
    assert plan["adb"] == ("h1:5037", "h2:5037")
    assert checks.resume_plan("r", run, {**given, "devices": ("A",)}, defaults)["devices"] == ("A",)


# -- eval sets and output paths ------------------------------------------------------------------


def _eval_folder(tmp_path, image: bytes | None = None, mask: bytes | None = None):
    import cv2
    import numpy as np

    folder = tmp_path / "eval set"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    good = cv2.imencode(".png", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()
    (folder / "images" / "a.png").write_bytes(good if image is None else image)
    (folder / "masks" / "a.png").write_bytes(good if mask is None else mask)
    return folder


@pytest.mark.parametrize("which", ["image", "mask"])
def test_zero_byte_eval_file_is_a_usage_error(tmp_path, which):
    from harness.train.data import load_folder

    folder = _eval_folder(tmp_path, **{which: b""})
    with pytest.raises(UsageError, match="is empty"):
        load_folder(folder, 8)


def test_fifo_and_device_eval_files_are_refused_unread(tmp_path):
    """A FIFO would block the read forever, /dev/zero would read until MemoryError: both are
    refused from their file type, before any read."""
    from harness.train.data import load_folder

    folder = _eval_folder(tmp_path)
    image = folder / "images" / "a.png"
    image.unlink()
    os.mkfifo(image)
    with pytest.raises(UsageError, match="not a regular file"):
        load_folder(folder, 8)
    image.unlink()
    image.symlink_to("/dev/zero")
    with pytest.raises(UsageError, match="not a regular file"):
        load_folder(folder, 8)


def test_report_out_that_is_a_file_and_gate_junit_that_is_a_folder(tmp_path):
    from harness.store import Store

    store = tmp_path / "r.db"
    with Store(store):
        pass
    existing = tmp_path / "report.html"
    existing.write_text("mine")
    result = _cli("report", "--store", store, "--out", existing)
    assert result.returncode == ExitCode.USAGE and one_line_error(result.stderr), result.stderr
    assert "is a file: give a folder" in result.stderr and existing.read_text() == "mine"
    folder = tmp_path / "junit dir"
    folder.mkdir()
    result = _cli("gate", "--store", store, "--junit", folder)
    assert result.returncode == ExitCode.USAGE and one_line_error(result.stderr), result.stderr
    assert "is a folder: give a file path" in result.stderr
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".*.tmp"))


# -- inspect -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--mean", "nan", "--std", "1"], "must be finite"),
        (["--mean", "127.5", "--std", "inf"], "must be finite"),
        (["--fg-channel", "99"], "--fg-channel 99"),
        (["--fg-channel", "-1"], "--fg-channel -1"),
    ],
    ids=["mean-nan", "std-inf", "fg-99", "fg-negative"],
)
def test_bad_inspect_option_is_one_line_exit_2(bench_model, extra, needle):
    model = bench_model / "variants" / "sigmoid-fp32.tflite"
    result = _cli("inspect", model, *extra)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert one_line_error(result.stderr) and needle in result.stderr, result.stderr


# -- start-up ------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["notaport", "99999", "0", "-5"])
def test_bad_adb_port_in_the_environment_is_one_line_exit_2(port):
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": port}
    result = subprocess.run(
        [sys.executable, "-m", "harness", "devices"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert one_line_error(result.stderr) and "ANDROID_ADB_SERVER_PORT" in result.stderr


def test_no_adb_server_is_started_on_a_privileged_port():
    from harness.devices import adb

    result = _cli("devices", "--adb", "127.0.0.1:1")
    assert result.returncode == ExitCode.ADB_UNAVAILABLE, result.stderr
    assert one_line_error(result.stderr) and "1024-65535" in result.stderr
    assert not adb.server_reachable(adb.AdbServer("127.0.0.1", 1))


_INTERRUPT_DURING_IMPORTS = """
import importlib.abc, os, signal, sys

class Interrupt(importlib.abc.MetaPathFinder):
    # Ctrl-C arrives exactly while the commands are being imported.
    def find_spec(self, name, path, target=None):
        if name == "harness.devices.commands":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt())
sys.argv = ["harness", "devices"]
from harness.cli import main
main()
"""


def test_ctrl_c_during_imports_is_quiet_exit_130():
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_DURING_IMPORTS],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert result.returncode == ExitCode.INTERRUPTED, result.stderr
    assert result.stderr == "interrupted\n"
