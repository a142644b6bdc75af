"""One error root for everything a user can cause.

Every subclass carries a fixed exit code; the CLI prints ``str(error)`` on one line and exits
with ``error.exit_code``. Foreign exceptions (adbutils, subprocess, TensorFlow) are translated
at the boundary with ``raise HarnessError(...) from exc``. The table in ``docs/exit-codes.md``
is generated from :data:`EXIT_CODES` and checked by a test.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # a gate check failed (the measurement is fine, the result is not)
    USAGE = 2  # bad arguments, bad input file, bad policy
    DEVICE_NOT_FOUND = 3  # no device matches, or the selection is ambiguous
    ADB_UNAVAILABLE = 4  # no adb server reachable and none could be started
    DEVICE_UNAVAILABLE = 5  # device offline, unauthorized, or lost mid-run
    TIMEOUT = 6  # a device command or transfer exceeded its time limit
    MODEL = 7  # model/conversion problem: not a model folder, corrupt .tflite, bad outputs
    VIRTUAL = 8  # virtual phone could not start/stop (unknown profile, port in use)
    ASSETS = 9  # a benchmark binary/APK is missing, unpinned or fails its checksum
    PARTIAL = 10  # the run finished but some cells failed; finished cells are stored
    DEVICE_BUSY = 11  # another harness run holds the device lock
    INTERNAL = 70  # a bug in harness (EX_SOFTWARE): rerun with --debug and report it
    INTERRUPTED = 130  # Ctrl-C; everything already measured is kept


EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "Success.",
    ExitCode.CHECK_FAILED: "A release-gate check failed (the failing checks are listed).",
    ExitCode.USAGE: "Bad arguments or bad input (unknown option, file, profile value, policy).",
    ExitCode.DEVICE_NOT_FOUND: "No connected device matches --device, or more than one does.",
    ExitCode.ADB_UNAVAILABLE: "No adb server is reachable and none could be started.",
    ExitCode.DEVICE_UNAVAILABLE: "The device is offline, unauthorized, or was lost.",
    ExitCode.TIMEOUT: "A device command or transfer took longer than its timeout.",
    ExitCode.MODEL: "The model or variant is unusable (not a model folder, corrupt .tflite, ...).",
    ExitCode.VIRTUAL: "A virtual phone could not be started or stopped (e.g. port in use).",
    ExitCode.ASSETS: "A benchmark binary or APK is missing, unpinned, or fails its checksum.",
    ExitCode.PARTIAL: "The run completed but some cells failed; finished cells are stored.",
    ExitCode.DEVICE_BUSY: "Another harness process is measuring on the device.",
    ExitCode.INTERNAL: "Internal error (a bug); rerun with --debug for the traceback.",
    ExitCode.INTERRUPTED: "Interrupted (Ctrl-C); results measured so far are kept.",
}


class HarnessError(Exception):
    """Root of every user-facing failure. ``str(err)`` is the one line shown to the user."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        # Always one line: a newline in a foreign message must not break the contract.
        return " ".join(self.message.split())


class UsageError(HarnessError):
    exit_code = ExitCode.USAGE


class DeviceNotFound(HarnessError):
    exit_code = ExitCode.DEVICE_NOT_FOUND


class AdbUnavailable(HarnessError):
    exit_code = ExitCode.ADB_UNAVAILABLE


class DeviceUnavailable(HarnessError):
    exit_code = ExitCode.DEVICE_UNAVAILABLE


class DeviceTimeout(HarnessError):
    exit_code = ExitCode.TIMEOUT


class ModelError(HarnessError):
    exit_code = ExitCode.MODEL


class ConversionFailed(ModelError):
    pass


class VirtualPhoneError(HarnessError):
    exit_code = ExitCode.VIRTUAL


class AssetError(HarnessError):
    exit_code = ExitCode.ASSETS


class DeviceBusy(HarnessError):
    exit_code = ExitCode.DEVICE_BUSY


class GateFailed(HarnessError):
    exit_code = ExitCode.CHECK_FAILED


class PartialRun(HarnessError):
    exit_code = ExitCode.PARTIAL
