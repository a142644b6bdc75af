"""The APK runner (``harness bench --runner apk``): the official benchmark app, in the foreground.

Android schedules a foreground Activity differently from a binary started by ``adb shell``
(FACTS.md §1), so the benchmark APK can time a model differently. The runner installs the
pinned APK (pushed hash-cached, then ``pm install -r -d -g``: what ``adb install -r -d -g``
does on the phone), clears the log (``logcat -c``), starts
``am start -S -n org.tensorflow.lite.benchmark/.BenchmarkModelActivity --es args '...'`` (all
flags in one string; ``am start`` returns at once) and polls ``logcat -d -s tflite libc`` until
the timings line, a failure line or a native crash appears, or the deadline passes.

The parsers here are pure and tested on captured text; the accuracy pass keeps using the
binary (the APK writes no output file).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from harness.devices.device import Device, quote, sh_join
from harness.errors import AssetError
from harness.runner import parse_log

PACKAGE = "org.tensorflow.lite.benchmark"
COMPONENT = f"{PACKAGE}/.BenchmarkModelActivity"
LOG_TAGS = ("tflite", "libc")  # the benchmark's lines; a native crash's "Fatal signal"
POLL_SECONDS = 0.25
SETTLE_SECONDS = 0.3  # after the timings line, the memory lines follow within this

_TIMINGS = re.compile(r"\b(?:Average )?[Ii]nference timings in us\b")
_FAILED = re.compile(r"\bBenchmarking failed\b")
_FATAL = re.compile(r"\bFatal signal (\d+)\b")


def start_command(flags: list[str]) -> str:
    """The device shell command that starts one benchmark in the app."""
    for flag in flags:
        if any(c.isspace() for c in flag):
            raise ValueError(f"the benchmark APK splits its args on spaces: cannot pass {flag!r}")
    return sh_join(["am", "start", "-S", "-n", COMPONENT, "--es", "args", " ".join(flags)])


@dataclass(frozen=True)
class ApkOutcome:
    """What the log says so far: ``state`` is ``running``, ``done``, ``failed`` or ``crashed``;
    ``returncode`` is what a shell run would have exited with (0, 1, 128+signal)."""

    state: str
    returncode: int | None


def outcome(logcat_text: str) -> ApkOutcome:
    """Pure: the state of the app's benchmark from a ``logcat -d -s tflite libc`` dump."""
    fatal = _FATAL.search(logcat_text)
    if fatal:
        return ApkOutcome("crashed", 128 + int(fatal.group(1)))
    if _FAILED.search(logcat_text):
        return ApkOutcome("failed", 1)
    if _TIMINGS.search(logcat_text):
        return ApkOutcome("done", 0)
    return ApkOutcome("running", None)


def install(device: Device, local_apk, remote: str) -> int:
    """Push (hash-cached) and install the APK unless this exact one is installed; -> bytes
    sent. AssetError when the phone refuses it."""
    result = device.retrying(lambda: device.push_many([(local_apk, remote)]), "push apk")[0]
    installed = device.retrying(lambda: device.shell(["pm", "path", PACKAGE], timeout=30), "pm")
    if result.skipped and installed.ok and installed.out.strip().startswith("package:"):
        return 0
    done = device.shell(["pm", "install", "-r", "-d", "-g", remote], timeout=120)
    text = (done.out + " " + done.err).strip()
    if not done.ok or "Success" not in text:
        raise AssetError(
            f"{device.serial}: installing the benchmark APK failed: {' '.join(text.split())[:200]}"
        )
    return result.bytes_sent


@dataclass(frozen=True)
class ApkRun:
    returncode: int
    log: str
    seconds: float
    started: bool = True  # False: `am start` refused (the log says why)


def run_once(device: Device, flags: list[str], timeout: float) -> ApkRun:
    """One benchmark in the app: clear the log, start, poll the log until an outcome.

    Raises TimeoutError (the app is force-stopped) when nothing conclusive appears in time;
    device errors (lost link) propagate."""
    command = start_command(flags)
    device.shell(["logcat", "-c"], timeout=30)
    started = time.monotonic()
    launch = device.shell(command, timeout=30)
    said = " ".join((launch.out + " " + launch.err).split())
    if not launch.ok or "Error" in said:
        return ApkRun(launch.returncode or 1, f"am start failed: {said}", 0.0, started=False)
    dump = ["logcat", "-d", "-s", *LOG_TAGS]
    deadline = started + timeout
    while True:
        text = device.shell(dump, timeout=30).out
        seen = outcome(text)
        if seen.state == "done":
            time.sleep(SETTLE_SECONDS)
            text = device.shell(dump, timeout=30).out
            seen = outcome(text)
        if seen.state != "running":
            return ApkRun(seen.returncode or 0, text, time.monotonic() - started)
        if time.monotonic() > deadline:
            device.shell(f"am force-stop {quote(PACKAGE)}", timeout=30)
            raise TimeoutError(text)
        time.sleep(POLL_SECONDS)


def parse(run: ApkRun):
    """The run's log as a BenchmarkLog (logcat prefixes are stripped by the parser)."""
    return parse_log(run.log)
