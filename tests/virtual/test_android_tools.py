"""The virtual phone's pm, am and logcat (android_tools.py), run as the phone's shell runs them,
and the ABI a virtual phone presents (``--abi``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from harness.errors import UsageError
from harness.virtual import android_tools
from harness.virtual.profiles import VIRTUAL_ABI, check_abi, load_profile

TOOLS = android_tools.__file__


@pytest.fixture
def root(tmp_path):
    (tmp_path / ".harness").mkdir()
    (tmp_path / ".harness" / "logcat").write_text("")
    return tmp_path


def _tool(root, *args):
    env = {
        **os.environ,
        "HARNESS_VIRTUAL_ROOT": str(root),
        "HARNESS_VIRTUAL_PYTHON": sys.executable,
    }
    return subprocess.run(
        [sys.executable, "-S", "-E", "-B", TOOLS, *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_pm_installs_only_the_standin(root):
    fake = root / "other.apk"
    fake.write_bytes(b"PK\x03\x04 a real zip would be an APK for another phone")
    bad = _tool(root, "pm", "install", "-r", "-d", "-g", str(fake))
    assert bad.returncode == 1 and "INSTALL_FAILED_INVALID_APK" in bad.stdout
    missing = _tool(root, "pm", "install", str(root / "nope.apk"))
    assert missing.returncode == 1 and "Can't open file" in missing.stdout
    standin = root / "bm.apk"
    standin.write_text(android_tools.standin_apk())
    ok = _tool(root, "pm", "install", "-r", "-d", "-g", str(standin))
    assert ok.returncode == 0 and ok.stdout.strip() == "Success"
    again = _tool(root, "pm", "install", str(standin))
    assert again.returncode == 1 and "INSTALL_FAILED_ALREADY_EXISTS" in again.stdout
    path = _tool(root, "pm", "path", android_tools.BENCHMARK_PACKAGE)
    assert path.stdout.strip() == "package:/data/app/org.tensorflow.lite.benchmark/base.apk"
    assert _tool(root, "pm", "path", "com.example.none").returncode == 1


def test_am_refuses_what_is_not_installed_and_logcat_filters_and_clears(root):
    component = f"{android_tools.BENCHMARK_PACKAGE}/{android_tools.BENCHMARK_ACTIVITY}"
    refused = _tool(root, "am", "start", "-S", "-n", component, "--es", "args", "--graph=x")
    assert refused.returncode == 1 and "does not exist" in refused.stderr
    log = root / ".harness" / "logcat"
    log.write_text(
        android_tools.log_line("tflite", "I", "INFO: Loaded model x", pid=7)
        + android_tools.log_line("ActivityManager", "I", "Start proc", pid=8)
        + android_tools.log_line("libc", "F", "Fatal signal 11 (SIGSEGV) in tid 7", pid=7)
    )
    only = _tool(root, "logcat", "-d", "-s", "tflite")
    assert only.stdout.count("\n") == 1 and " I tflite  : INFO: Loaded model x" in only.stdout
    two = _tool(root, "logcat", "-d", "-s", "tflite:V", "libc:F")
    assert two.stdout.count("\n") == 2 and "ActivityManager" not in two.stdout
    assert _tool(root, "logcat", "-c").returncode == 0 and log.read_text() == ""


def test_am_start_runs_the_benchmark_in_the_background(root):
    standin = root / "bm.apk"
    standin.write_text(android_tools.standin_apk())
    assert _tool(root, "pm", "install", str(standin)).returncode == 0
    component = f"{android_tools.BENCHMARK_PACKAGE}/{android_tools.BENCHMARK_ACTIVITY}"
    started = _tool(
        root, "am", "start", "-S", "-n", component, "--es", "args", "--graph=/nope.tflite"
    )
    assert started.returncode == 0 and "Starting: Intent { cmp=" in started.stdout
    deadline = time.monotonic() + 60
    while "Benchmarking failed" not in (text := (root / ".harness/logcat").read_text()):
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    assert all(" tflite  : " in line or " libc " in line for line in text.splitlines())


def test_a_virtual_phone_presents_the_abi_it_is_given():
    profile = load_profile("SM-G973F")
    assert profile.getprop()["ro.product.cpu.abi"] == VIRTUAL_ABI
    props = profile.getprop("arm64-v8a")
    assert props["ro.product.cpu.abi"] == "arm64-v8a" and props["ro.harness.virtual"] == "1"
    assert check_abi("") == "" and check_abi("x86_64") == "x86_64"
    with pytest.raises(UsageError, match="--abi mips: not an ABI"):
        check_abi("mips")
