"""The path a real phone takes, on a virtual phone that presents a real ABI (``--abi arm64-v8a``).

A test assets folder (HARNESS_ASSETS) pins stand-ins for the arm64 benchmark_model and the
benchmark APK; the virtual phone's shell runs the stand-in binary (a script handing its
arguments to the virtual runner) and its ``pm``/``am``/``logcat`` run the stand-in APK. The
harness side is a real phone's: manifest lookup by ABI, pin check, push, chmod, run from
/data/local/tmp, and for ``--runner apk`` install, ``am start`` and logcat polling.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys

import pytest

from harness import assets, config
from harness.bench import apk
from harness.bench.run import BenchOptions, run_bench
from harness.bench.stage import REMOTE_BINARY
from harness.devices import adb
from harness.devices.device import Device
from harness.errors import AssetError, ExitCode
from harness.store import Store
from harness.virtual import manager
from harness.virtual.android_tools import standin_apk, standin_binary
from tests.conftest import free_port

BINARY = standin_binary("test stand-in for android_aarch64_benchmark_model")
APK = standin_apk("test stand-in for android_aarch64_benchmark_model.apk")


@pytest.fixture(scope="module")
def real_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    src = config.REPO_ROOT / "android_assets"
    for sub in ("devices", "scripts", "bin/virtual"):
        shutil.copytree(src / sub, root / sub)
    shutil.copy(src / "manifest.toml", root / "manifest.toml")
    (root / "bin/arm64-v8a").mkdir(parents=True)
    (root / "bin/arm64-v8a/benchmark_model").write_text(BINARY)
    (root / "bin/arm64-v8a/benchmark_model.apk").write_text(APK)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_ASSETS", str(root))
        assets.pin("arm64-v8a")
        assets.pin("arm64-v8a", assets.AssetKind.APK)
        yield root


@pytest.fixture(scope="module")
def arm_phone(real_assets, adb_server):
    record = manager.start("SM-G973F", port=free_port(), servers=[adb_server], abi="arm64-v8a")
    yield record
    if manager.find(record.serial):
        manager.stop(record.serial)


def _opts(model, phone, store, **kw) -> BenchOptions:
    base = dict(
        model=str(model),
        devices=(phone.serial,),
        store=str(store),
        runs=3,
        warmup=1,
        repeats=2,
        images=2,
        variants="softmax-fp32",
        delegates="cpu,gpu",
    )
    base.update(kw)
    return BenchOptions(**base)


def _device(serial: str) -> Device:
    (entry,) = adb.select_devices(adb.list_devices(adb.resolve_servers()), [serial])
    return Device(entry)


def test_virtual_phone_presents_the_real_abi(arm_phone):
    info = _device(arm_phone.serial).probe()
    assert info.abi == "arm64-v8a" and info.virtual  # a real ABI, still labelled virtual
    assert manager.find(arm_phone.serial)[0].abi == "arm64-v8a"


def test_shell_runner_pushes_the_pinned_arm64_binary_once(bench_model, arm_phone, tmp_path):
    store_path = tmp_path / "r.db"
    out = run_bench(_opts(bench_model, arm_phone, store_path))
    assert out.status == "complete" and len(out.cells) == 2
    pinned = hashlib.sha256(BINARY.encode()).hexdigest()
    for cell in out.cells:
        assert cell.latency.runner == "shell" and cell.latency.extra["runner_sha256"] == pinned
        assert cell.accuracy.reference.iou >= 0.99
        assert len(cell.latency.invocation_avg_ms) == 2
    # What the phone ran is the stand-in arm64 binary, not the virtual launcher.
    assert _device(arm_phone.serial).read_file(REMOTE_BINARY) == BINARY.encode()
    with Store(store_path) as store:
        (device,) = store.devices(out.run_id)
        assert device["info"]["abi"] == "arm64-v8a" and device["virtual"]
    again = run_bench(_opts(bench_model, arm_phone, store_path))
    assert again.bytes_sent == 0 and again.status == "complete"  # binary pushed once


def test_apk_runner_times_from_logcat(bench_model, arm_phone, tmp_path):
    out = run_bench(_opts(bench_model, arm_phone, tmp_path / "r.db", runner="apk"))
    assert out.status == "complete" and len(out.cells) == 2
    pinned = hashlib.sha256(APK.encode()).hexdigest()
    for cell in out.cells:
        assert cell.latency.runner == "apk" and cell.latency.extra["runner_sha256"] == pinned
        assert cell.latency.extra["accuracy_runner"] == "shell"
        assert cell.latency.avg_ms > 0 and len(cell.latency.invocation_avg_ms) == 2
        # Timings came from logcat lines of tag tflite.
        assert re.search(
            r"^\S+ \S+ +\d+ +\d+ I tflite +: (INFO: )?Inference timings in us:", cell.log, re.M
        )
        assert cell.accuracy.reference.iou >= 0.99  # accuracy pass: the binary
    assert cell.delegation.verdict == "full"  # the gpu cell's delegate lines, from logcat
    listed = _device(arm_phone.serial).shell(["pm", "path", apk.PACKAGE])
    assert listed.ok and listed.out.strip() == f"package:/data/app/{apk.PACKAGE}/base.apk"


def test_apk_runner_hang_is_a_failed_cell_within_the_deadline(bench_model, arm_phone, tmp_path):
    manager.set_chaos(arm_phone.serial, [{"match": "", "action": "hang", "when": "latency"}])
    try:
        out = run_bench(
            _opts(
                bench_model, arm_phone, tmp_path / "r.db", runner="apk", delegates="cpu", timeout=3
            )  # fmt: skip
        )
    finally:
        manager.set_chaos(arm_phone.serial, [])
    (cell,) = out.cells
    assert not cell.measured and "no timings in logcat after 3s" in cell.reason


@pytest.mark.parametrize("how", ["mismatch", "unpinned"])
def test_unpinned_or_mismatched_binary_is_refused(bench_model, arm_phone, tmp_path, how):
    binary = assets.find("arm64-v8a").path
    manifest = assets.manifest_path()
    saved_binary, saved_manifest = binary.read_bytes(), manifest.read_text()
    if how == "mismatch":
        binary.write_text(BINARY + "# changed\n")
    else:
        manifest.write_text(saved_manifest.replace(assets.find("arm64-v8a").sha256, "", 1))
    store_path = tmp_path / "r.db"
    try:
        with pytest.raises(AssetError) as info:
            run_bench(_opts(bench_model, arm_phone, store_path))
        run = subprocess.run(
            [sys.executable, "-m", "harness", "bench", "-m", str(bench_model), "-d",
             arm_phone.serial, "--store", str(store_path), "--variants", "softmax-fp32"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        binary.write_bytes(saved_binary)
        manifest.write_text(saved_manifest)
    assert info.value.exit_code == ExitCode.ASSETS
    expected = "does not match the pinned" if how == "mismatch" else "not pinned"
    assert expected in str(info.value)
    assert run.returncode == ExitCode.ASSETS and run.stderr.count("\n") == 1, run.stderr
    assert expected in run.stderr and "Traceback" not in run.stderr
    assert not store_path.exists()  # refused before any run was stored


def test_apk_start_command_and_outcome_parsing():
    cmd = apk.start_command(["--graph=/data/local/tmp/h/m.tflite", "--num_threads=4"])
    assert cmd == (
        "am start -S -n org.tensorflow.lite.benchmark/.BenchmarkModelActivity --es args "
        "'--graph=/data/local/tmp/h/m.tflite --num_threads=4'"
    )
    with pytest.raises(ValueError, match="splits its args on spaces"):
        apk.start_command(["--graph=/data/local/tmp/a b.tflite"])
    head = "11-30 03:40:12.345  1234  1250 I tflite  : "
    assert apk.outcome(head + "Loaded model /data/local/tmp/m.tflite\n").state == "running"
    done = head + "Inference timings in us: Init: 1007529, First inference: 4098, "
    done += "Warmup (avg): 1686.59, Inference (avg): 1687.92\n"
    assert apk.outcome(done) == apk.ApkOutcome("done", 0)
    log = apk.parse(apk.ApkRun(0, done, 1.0))
    assert log.inference_avg_us == pytest.approx(1687.92) and log.init_us == 1007529
    failed = head.replace(" I ", " E ") + "Benchmarking failed.\n"
    assert apk.outcome(failed) == apk.ApkOutcome("failed", 1)
    fatal = "11-30 03:40:13.000  1234  1250 F libc    : Fatal signal 11 (SIGSEGV) in tid 1250\n"
    assert apk.outcome(head + "Loaded model x\n" + fatal) == apk.ApkOutcome("crashed", 139)
