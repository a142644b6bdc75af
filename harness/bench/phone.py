"""What bench reads from a phone around the cells: its state before a run (warnings, never a
refusal), thermal/CPU snapshots around each cell, big-core pinning, and ``--require-cool``."""

from __future__ import annotations

import threading
import time

from harness.devices.device import Device
from harness.devices.info import SNAPSHOT_SCRIPT, DeviceInfo, parse_snapshot
from harness.devices.state import STATE_SCRIPT, PhoneState, parse_state

COOL_POLL_SECONDS = 2.0


def affinity(device: Device, info: DeviceInfo) -> str | None:
    """A taskset mask of the big cores, if the phone has a smaller cluster and taskset works."""
    big = info.big_cores()
    if not big or len(big) == info.cores:
        return None
    mask = hex(sum(1 << c for c in big))
    probe = device.retrying(lambda: device.shell(f"taskset {mask} true", timeout=10), "taskset")
    return mask if probe.ok else None  # e.g. the virtual phone's host has fewer cores


def snapshot(device: Device) -> dict:
    """Thermal zones and CPU frequencies (read-only: retried)."""
    return parse_snapshot(
        device.retrying(lambda: device.shell(SNAPSHOT_SCRIPT, timeout=30), "snapshot").out
    )


def read_state(device: Device) -> PhoneState:
    """Battery, charging, screen, thermal status, busy processes (read-only: retried)."""
    return parse_state(
        device.retrying(lambda: device.shell(STATE_SCRIPT, timeout=30), "phone state").out
    )


def hottest(snap: dict) -> tuple[str, float] | None:
    zones = [(name, t) for name, t in snap.get("zones", {}).items() if t is not None]
    return max(zones, key=lambda z: z[1], default=None)


class NotCool(Exception):
    """The phone stayed at or above ``--require-cool`` for the whole wait."""


def wait_cool(
    device: Device, limit_c: float, budget: float, stop: threading.Event
) -> tuple[dict, float]:
    """Poll snapshots until the hottest zone is below ``limit_c`` -> (snapshot, seconds
    waited); NotCool (one line) when ``budget`` seconds pass first."""
    started = time.monotonic()
    while True:
        snap = snapshot(device)
        top = hottest(snap)
        if top is None or top[1] < limit_c:
            return snap, time.monotonic() - started
        if time.monotonic() - started >= budget or stop.is_set():
            raise NotCool(
                f"phone did not cool below {limit_c:g}°C within {budget:g}s "
                f"(hottest: {top[0]} at {top[1]:.1f}°C)"
            )
        stop.wait(COOL_POLL_SECONDS)
