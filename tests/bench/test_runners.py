"""The latency pass per runner, against a scripted device (no phone, no adb): what it sends,
and how it judges what comes back."""

from __future__ import annotations

import pytest

from harness.bench import apk
from harness.bench.measure import CellFailed, Settings, latency_pass
from harness.bench.stage import Staged
from harness.devices.device import ShellResult
from harness.runner import Delegate

SHELL_LOG = (
    "INFO: Loaded model /data/local/tmp/harness/models/m.tflite\n"
    "INFO: count=3 first=2100 curr=2000 min=1900 max=2100 avg=2000 std=80\n"
    "INFO: Inference timings in us: Init: 5000, First inference: 2100, Warmup (avg): 2100, "
    "Inference (avg): 2000\n"
)
HEAD = "11-30 03:40:12.345  1234  1250 I tflite  : "


class Scripted:
    """Answers shell commands from a function; records every command."""

    serial = "scripted"

    def __init__(self, answer) -> None:
        self.answer = answer
        self.commands: list[str] = []

    def shell(self, command, timeout=60.0, stdin=None) -> ShellResult:
        text = command if isinstance(command, str) else " ".join(command)
        self.commands.append(text)
        code, out = self.answer(text)
        return ShellResult(text, code, out.encode(), b"", 0.01)


class _Target:
    sha256 = "ab" * 32


def _staged() -> Staged:
    staged = Staged(binary_sha256="b" * 64, apk_sha256="a" * 64)
    staged.models[_Target.sha256] = "/data/local/tmp/harness/models/m.tflite"
    return staged


def test_shell_runner_runs_the_binary_under_taskset_from_the_harness_folder():
    device = Scripted(lambda cmd: (0, SHELL_LOG))
    s = Settings(runs=3, warmup=1, repeats=2, affinity="0xc0")
    latency, _, _ = latency_pass(device, _staged(), _Target(), Delegate.CPU, s)
    assert device.commands[0].startswith(
        "cd /data/local/tmp/harness && taskset 0xc0 /data/local/tmp/harness/bin/benchmark_model "
        "--graph=/data/local/tmp/harness/models/m.tflite"
    )
    assert len(device.commands) == 2 and latency["avg_ms"] == 2.0
    assert latency["runner"] == "shell" and latency["runner_sha256"] == "b" * 64


def test_apk_runner_clears_starts_and_polls_logcat(monkeypatch):
    monkeypatch.setattr(apk, "POLL_SECONDS", 0.0)
    monkeypatch.setattr(apk, "SETTLE_SECONDS", 0.0)
    polls = {"n": 0}

    def answer(cmd: str):
        if cmd.startswith("logcat -d"):
            polls["n"] += 1
            lines = SHELL_LOG.splitlines() if polls["n"] >= 3 else []  # the app takes a while
            return 0, "".join(HEAD + line + "\n" for line in lines)
        return 0, "Starting: Intent { cmp=org.tensorflow.lite.benchmark/.BenchmarkModelActivity }"

    device = Scripted(answer)
    s = Settings(runs=3, warmup=1, repeats=1, runner="apk", affinity="0xc0")
    latency, _, log = latency_pass(device, _staged(), _Target(), Delegate.GPU, s)
    assert latency["affinity"] is None and not any("taskset" in c for c in device.commands)
    assert device.commands[0] == "logcat -c"
    assert device.commands[1].startswith(
        "am start -S -n org.tensorflow.lite.benchmark/.BenchmarkModelActivity --es args "
        "'--graph=/data/local/tmp/harness/models/m.tflite --warmup_runs=1 --num_runs=3"
    )
    assert "--use_gpu=true" in device.commands[1]
    assert latency["avg_ms"] == 2.0 and latency["runner"] == "apk" and polls["n"] == 4
    assert latency["runner_sha256"] == "a" * 64 and latency["accuracy_runner"] == "shell"
    assert "tflite  : INFO: Inference timings" in log


def test_apk_runner_deadline_force_stops_the_app(monkeypatch):
    monkeypatch.setattr(apk, "POLL_SECONDS", 0.01)
    device = Scripted(lambda cmd: (0, HEAD + "INFO: Loaded model x\n" if "logcat" in cmd else ""))
    s = Settings(runs=3, warmup=1, repeats=1, runner="apk", timeout=0.2)
    with pytest.raises(CellFailed, match=r"apk runner\): no timings in logcat after 0.2s"):
        latency_pass(device, _staged(), _Target(), Delegate.CPU, s)
    assert device.commands[-1] == "am force-stop org.tensorflow.lite.benchmark"


def test_apk_runner_crash_and_am_error_are_cell_failures(monkeypatch):
    monkeypatch.setattr(apk, "POLL_SECONDS", 0.0)
    fatal = "11-30 03:40:13.000  1234  1250 F libc    : Fatal signal 11 (SIGSEGV) in tid 1\n"
    device = Scripted(lambda cmd: (0, fatal if "logcat -d" in cmd else ""))
    s = Settings(runs=3, warmup=1, repeats=1, runner="apk")
    with pytest.raises(CellFailed, match=r"crashed \(SIGSEGV, exit 139\)"):
        latency_pass(device, _staged(), _Target(), Delegate.CPU, s)
    refused = "Error: Activity class {org.tensorflow.lite.benchmark/.X} does not exist."
    device = Scripted(lambda cmd: (0, refused if cmd.startswith("am start") else ""))
    with pytest.raises(CellFailed, match="am start failed: Error: Activity class"):
        latency_pass(device, _staged(), _Target(), Delegate.CPU, s)


def test_compiled_model_tool_is_named_in_the_cell_failure():
    log = "========== BENCHMARK RESULTS ==========\nModel initialization: 12.5 ms\n"
    device = Scripted(lambda cmd: (0, log))
    with pytest.raises(CellFailed, match="LiteRT's CompiledModel tool"):
        latency_pass(device, _staged(), _Target(), Delegate.CPU, Settings(repeats=1))
