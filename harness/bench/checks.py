"""Checks of ``harness bench`` options, before anything is created (pure: raise UsageError).

Durations must be finite and at most a day: ``--timeout inf`` once reached the workers as an
OverflowError (a thread timeout cannot hold it) and lost every cell. Counts have bounds that
keep the eval set in memory. Names give the option as the user typed it.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

from harness.devices.identity import DeviceId
from harness.errors import DeviceBusy, UsageError

MAX_SECONDS = 86400.0  # one day: the longest wait or timeout any option accepts
MAX_IMAGES = 10000
MAX_EVAL_BYTES = 2 << 30  # the eval set (uint8 images at the model's input size) in memory


def seconds(value: float | None, name: str, *, positive: bool = False) -> None:
    """A duration: a finite number of seconds, 0 (or, ``positive``, more) up to a day."""
    if value is None:
        return
    low = "more than 0" if positive else "0 or more"
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise UsageError(f"{name} must be {low} seconds (at most {MAX_SECONDS:g}), got {value}")
    if value > MAX_SECONDS:
        raise UsageError(f"{name} must be at most {MAX_SECONDS:g} seconds (a day), got {value:g}")


def count(value: int | None, name: str, low: int, high: int | None = None) -> None:
    if value is None:
        return
    if value < low:
        raise UsageError(f"{name} must be at least {low}, got {value}")
    if high is not None and value > high:
        raise UsageError(f"{name} must be at most {high}, got {value}")


def eval_memory(images: int, height: int, width: int, channels: int) -> None:
    """The eval set must fit in memory (``--images 100000`` once ended in MemoryError)."""
    needed = images * height * width * max(channels, 3)
    if needed > MAX_EVAL_BYTES:
        raise UsageError(
            f"--images {images} at {height}x{width}x{channels} needs {needed / 2**30:.1f} GiB "
            f"of memory (at most {MAX_EVAL_BYTES / 2**30:g} GiB): use fewer images"
        )


def bench_options(opts) -> None:  # noqa: ANN001 - a BenchOptions (run.py imports this module)
    count(opts.runs, "--runs", 1)
    count(opts.repeats, "--repeats", 1)
    count(opts.warmup, "--warmup", 0)
    count(opts.images, "--images", 1, MAX_IMAGES)
    count(opts.threads, "--threads", 1, 256)
    seconds(opts.timeout, "--timeout", positive=True)
    seconds(opts.reconnect_wait, "--reconnect-wait")
    seconds(opts.cooldown, "--cooldown")
    seconds(opts.wait_lock, "--wait")
    seconds(opts.cool_wait, "--cool-wait")
    if opts.target_ci is not None and not (math.isfinite(opts.target_ci) and opts.target_ci > 0):
        raise UsageError(f"--target-ci must be a percentage above 0, got {opts.target_ci}")
    seconds(opts.max_time, "--max-time", positive=True)
    seconds(opts.sustain, "--sustain", positive=True)
    if opts.require_cool is not None and not -50.0 <= opts.require_cool <= 150.0:
        raise UsageError(f"--require-cool must be a temperature in °C, got {opts.require_cool}")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _same(key: str, given: object, stored: object) -> bool:
    if key in ("model", "eval_set") and isinstance(given, str) and isinstance(stored, str):
        return given == stored or Path(given).resolve() == Path(stored).resolve()
    return given == stored


def resume_plan(run_id: str, run: dict, given: dict, defaults: dict) -> dict:
    """The options a resumed run measures with: its own plan, devices included.

    ``given``: the options as passed now; ``defaults``: their defaults. A value given that
    differs from the plan (other than a default left alone) is an error, not silently
    ignored; so is a device the plan does not have. DeviceBusy while the run's process lives.
    """
    if run["status"] == "running" and run.get("pid") and run.get("host") == socket.gethostname():
        raise DeviceBusy(
            f"run {run_id} is still running (pid {run['pid']}): wait for it to end, "
            "or stop it, then resume"
        )
    config = run["config"]
    stored = config["options"]
    for key, value in stored.items():
        now = given.get(key)
        if key != "model" and now == defaults.get(key):
            continue  # left at its default: the plan's value is used
        if not _same(key, now, value):
            raise UsageError(
                f"--resume {run_id}: {_flag(key)} {now} differs from the run's plan "
                f"({value}); a resumed run keeps its plan (start a new run to change it)"
            )
    serials = list(config.get("devices") or [])
    ids = [str(DeviceId.from_json(d)) for d in config.get("device_ids") or []]
    # A plan from schema 3 on names each phone with its adb server (SERIAL@SERVER): a serial
    # that two servers list is resumed on both, never one twice.
    planned = ids or serials
    if extra := [d for d in given.get("devices", ()) if d not in planned + serials]:
        raise UsageError(
            f"--resume {run_id}: device {extra[0]!r} is not in the run's plan "
            f"({', '.join(planned) or 'none'}); resume without --device, or with its serials"
        )
    # The plan's phones are reached through the adb servers they were measured through.
    servers = tuple(
        dict.fromkeys(DeviceId.from_json(d).server for d in config.get("device_ids") or [])
    )
    return {
        **stored,
        "devices": tuple(given.get("devices") or planned),
        "adb": tuple(given.get("adb") or servers),
    }
