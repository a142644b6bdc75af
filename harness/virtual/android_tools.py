"""The virtual phone's ``pm``, ``am`` and ``logcat``: what the benchmark APK runner needs.

``android_assets/bin/virtual/benchmark_model.apk`` (and the test manifests' stand-ins) is not a
real APK: it is a text file starting with :data:`APK_MAGIC` that names the package and activity.
``pm install`` accepts only such a file (anything else fails with ``INSTALL_FAILED_INVALID_APK``,
as a real phone refuses an APK built for another ABI) and keeps it as ``/data/app/PKG/base.apk``.
``am start -n PKG/.BenchmarkModelActivity --es args '...'`` returns at once, like a phone's, and
runs the virtual benchmark_model in the background (its own session), writing every output
line to the phone's log buffer under tag ``tflite`` in logcat's ``threadtime`` format; a killed
benchmark leaves a ``libc`` ``Fatal signal`` line. ``logcat -d [-s] TAG...`` dumps the buffer,
``logcat -c`` clears it.

Started as ``python -S -E -B android_tools.py TOOL ARGS`` by launchers in ``/system/bin``:
standard library only, no harness import (it must start fast).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

APK_MAGIC = "HARNESS-VIRTUAL-APK 1"
BENCHMARK_PACKAGE = "org.tensorflow.lite.benchmark"
BENCHMARK_ACTIVITY = ".BenchmarkModelActivity"
BENCHMARK_MODULE = "harness.virtual.benchmark_model"


def standin_apk(note: str = "") -> str:
    """The text of an APK stand-in the virtual phone's ``pm`` recognises."""
    return (
        f"{APK_MAGIC}\npackage={BENCHMARK_PACKAGE}\nactivity={BENCHMARK_ACTIVITY}\n"
        "# Not an APK: a stand-in for the TFLite benchmark app, recognised only by a harness\n"
        "# virtual phone, whose activity runs the virtual benchmark_model (docs/virtual-phone.md).\n"
        + (f"# {note}\n" if note else "")
    )


def standin_binary(note: str = "") -> str:
    """A stand-in for a real ABI's benchmark_model: a script the virtual phone's shell runs,
    handing its arguments to the virtual benchmark_model (same as the virtual launcher)."""
    return (
        "#!/bin/sh\n# Stand-in for the official benchmark_model on a virtual phone that reports a\n"
        "# real ABI (harness virtual start --abi): hands its arguments to the virtual runner.\n"
        + (f"# {note}\n" if note else "")
        + 'if [ -n "$HARNESS_VIRTUAL_CLIENT" ]; then\n'
        '  exec "$HARNESS_VIRTUAL_PYTHON" -S -E -B "$HARNESS_VIRTUAL_CLIENT" "$@"\nfi\n'
        f'exec "$HARNESS_VIRTUAL_PYTHON" -m {BENCHMARK_MODULE} "$@"\n'
    )


def _root() -> Path:
    return Path(os.environ["HARNESS_VIRTUAL_ROOT"])


def _log_file() -> Path:
    return _root() / ".harness" / "logcat"


def _app_dir(package: str) -> Path:
    return _root() / "data" / "app" / package


def _pid_file(package: str) -> Path:
    return _root() / ".harness" / f"{package}.pid"


def log_line(tag: str, level: str, message: str, pid: int | None = None) -> str:
    now = time.time()
    stamp = time.strftime("%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
    pid = pid or os.getpid()
    return f"{stamp} {pid:5d} {pid:5d} {level} {tag:<8}: {message}\n"


def _append_log(text: str) -> None:
    with open(_log_file(), "a", encoding="utf-8") as handle:
        handle.write(text)


# -- pm ----------------------------------------------------------------------------------------
def _read_standin(path: Path) -> dict[str, str] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read(4096).splitlines()
    except OSError:
        return None
    if not lines or lines[0].strip() != APK_MAGIC:
        return None
    fields = dict(line.split("=", 1) for line in lines[1:] if "=" in line and line[0] != "#")
    return fields if fields.get("package") else None


def pm(args: list[str]) -> int:
    if args[:1] == ["path"] and len(args) == 2:
        apk = _app_dir(args[1]) / "base.apk"
        if apk.is_file():
            print(f"package:/data/app/{args[1]}/base.apk")
            return 0
        return 1
    if args[:1] == ["list"] and args[1:2] == ["packages"]:
        apps = _root() / "data" / "app"
        for entry in sorted(apps.iterdir()) if apps.is_dir() else []:
            print(f"package:{entry.name}")
        return 0
    if args[:1] == ["uninstall"] and len(args) == 2:
        shutil.rmtree(_app_dir(args[1]), ignore_errors=True)
        print("Success")
        return 0
    if args[:1] == ["install"]:
        opts = [a for a in args[1:] if a.startswith("-")]
        paths = [a for a in args[1:] if not a.startswith("-")]
        if len(paths) != 1:
            print("Error: install needs one APK path", file=sys.stderr)
            return 1
        fields = _read_standin(Path(paths[0]))
        if fields is None:
            exists = Path(paths[0]).is_file()
            print(
                "Failure [INSTALL_FAILED_INVALID_APK: not an APK this virtual phone can install]"
                if exists
                else f"Error: Can't open file: {paths[0]}"
            )
            return 1
        target = _app_dir(fields["package"]) / "base.apk"
        if target.is_file() and "-r" not in opts:
            print(f"Failure [INSTALL_FAILED_ALREADY_EXISTS: {fields['package']}]")
            return 1
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[0], target)
        print("Success")
        return 0
    print(f"pm: unsupported command: {' '.join(args)}", file=sys.stderr)
    return 1


# -- am ----------------------------------------------------------------------------------------
def _stop(package: str) -> None:
    pid_file = _pid_file(package)
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def am(args: list[str]) -> int:
    if args[:1] == ["force-stop"] and len(args) == 2:
        _stop(args[1])
        return 0
    if args[:1] != ["start"]:
        print(f"am: unsupported command: {' '.join(args)}", file=sys.stderr)
        return 1
    component, extras, stop_first, i = "", {}, False, 1
    while i < len(args):
        if args[i] == "-S":
            stop_first = True
        elif args[i] == "-n" and i + 1 < len(args):
            component, i = args[i + 1], i + 1
        elif args[i] == "--es" and i + 2 < len(args):
            extras[args[i + 1]], i = args[i + 2], i + 2
        i += 1
    package, _, activity = component.partition("/")
    fields = _read_standin(_app_dir(package) / "base.apk") if package else None
    if fields is None or activity != fields.get("activity"):
        print(f"Error: Activity class {{{component}}} does not exist.", file=sys.stderr)
        return 1
    if stop_first:
        print(f"Stopping: {package}")
        _stop(package)
    print(f"Starting: Intent {{ cmp={component}{' (has extras)' if extras else ''} }}")
    proc = subprocess.Popen(
        [sys.executable, "-S", "-E", "-B", os.path.abspath(__file__), "_activity"]
        + extras.get("args", "").split(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives this shell command, like an app's process
    )
    _pid_file(package).write_text(str(proc.pid))
    return 0


def _activity(argv: list[str]) -> int:
    """The benchmark app's work: the virtual benchmark_model, its output to logcat."""
    python = os.environ.get("HARNESS_VIRTUAL_PYTHON", sys.executable)
    client = os.environ.get("HARNESS_VIRTUAL_CLIENT")
    cmd = [python, "-S", "-E", "-B", client] if client else [python, "-m", BENCHMARK_MODULE]
    proc = subprocess.Popen(cmd + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for raw in proc.stdout:
        _append_log(log_line("tflite", "I", raw.decode(errors="replace").rstrip("\r\n")))
    code = proc.wait()
    if code < 0:
        name = signal.Signals(-code).name
        _append_log(log_line("libc", "F", f"Fatal signal {-code} ({name}) in tid {proc.pid}"))
    return 0


# -- logcat ------------------------------------------------------------------------------------
_TAG = re.compile(r"^\S+ \S+\s+\d+\s+\d+ [VDIWEF] (\S+)\s*:")


def logcat(args: list[str]) -> int:
    if "-c" in args:
        _log_file().write_text("")
        return 0
    skip_value = {"-v", "-b", "-t", "-T", "-f"}
    tags, i = [], 0
    while i < len(args):
        if args[i] in skip_value:
            i += 1
        elif not args[i].startswith("-"):
            tags.append(args[i].split(":", 1)[0])
        i += 1
    try:
        text = _log_file().read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    wanted = {t for t in tags if t != "*"}
    for line in text.splitlines(keepends=True):
        m = _TAG.match(line)
        if not wanted or (m and m.group(1) in wanted):
            sys.stdout.write(line)
    return 0  # without -d a phone's logcat would stream; this one always dumps and exits


TOOLS = {"pm": pm, "am": am, "logcat": logcat, "_activity": _activity}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TOOLS:
        print(f"usage: android_tools.py {{{','.join(TOOLS)}}} ARGS", file=sys.stderr)
        return 2
    return TOOLS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
