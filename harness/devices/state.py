"""A phone's state before measuring: battery, charging, screen, thermal status, busy processes.

One shell round trip (:data:`STATE_SCRIPT`); :func:`parse_state` is pure and never raises.
:func:`warnings` judges the state (hot, low, busy, screen off): a warning, never a refusal;
``harness bench --require-cool C`` is the one thing that waits (docs/real-phone.md).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from harness.devices.info import parse_battery, parse_thermal, split_sections

_SECTION = "@@harness-section "
STATE_SCRIPT = "; ".join(
    [
        f"echo '{_SECTION}battery'",
        "dumpsys battery 2>/dev/null",
        f"echo '{_SECTION}power'",
        "dumpsys power 2>/dev/null | grep -E 'mWakefulness=|Display Power: state='",
        f"echo '{_SECTION}thermalservice'",
        "dumpsys thermalservice 2>/dev/null | grep -m 1 -E 'Thermal Status|mThermalStatus'",
        f"echo '{_SECTION}thermal'",
        "cd /sys/class/thermal 2>/dev/null && for z in thermal_zone*; do "
        'echo "$z|$(cat $z/type 2>/dev/null)|$(cat $z/temp 2>/dev/null)"; done',
        f"echo '{_SECTION}top'",
        "top -b -n 1 -m 12 2>/dev/null",
        f"echo '{_SECTION}end'",
    ]
)

HOT_C = 45.0  # hottest zone at or above this: the phone is likely throttling
LOW_BATTERY = 20  # percent, when not charging
BUSY_CPU = 25.0  # %CPU (of one core) of another process
THERMAL_MODERATE = 2  # PowerManager.THERMAL_STATUS_MODERATE and above: throttling
_OWN = {"top", "sh", "grep", "dumpsys", "toybox", "cat", "logcat", "adbd"}


@dataclass(frozen=True)
class BusyProcess:
    pid: int
    cpu_pct: float
    name: str


@dataclass(frozen=True)
class PhoneState:
    battery_level: int | None = None
    battery_temp_c: float | None = None
    charging: bool | None = None
    screen_on: bool | None = None
    thermal_status: int | None = None  # 0 none .. 6 shutdown (Android PowerManager)
    hottest_c: float | None = None
    hottest_zone: str = ""
    busy: tuple[BusyProcess, ...] = field(default=())

    def to_json(self) -> dict:
        data = asdict(self)
        data["busy"] = [asdict(b) for b in self.busy]
        return data


def parse_charging(text: str) -> bool | None:
    """``dumpsys battery``: charging when any power source is on or status is 2 (charging)/5."""
    sources, status = [], None
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        value = value.strip().lower()
        if key.endswith(" powered"):
            sources.append(value == "true")
        elif key == "status" and value.isdigit():
            status = int(value)
    if not sources and status is None:
        return None
    return any(sources) or status in (2, 5)


def parse_screen(text: str) -> bool | None:
    """``dumpsys power``: ``mWakefulness=Awake`` or ``Display Power: state=ON``."""
    m = re.search(r"mWakefulness=(\w+)", text)
    if m:
        return m.group(1).lower() == "awake"
    m = re.search(r"Display Power: state=(\w+)", text)
    return m.group(1).upper() == "ON" if m else None


def parse_thermal_status(text: str) -> int | None:
    m = re.search(r"(?:Thermal Status|mThermalStatus)\s*[:=]\s*(\d+)", text)
    return int(m.group(1)) if m else None


def parse_top(text: str, min_cpu: float = BUSY_CPU) -> tuple[BusyProcess, ...]:
    """toybox ``top -b -n 1``: processes above ``min_cpu`` %CPU, not the shell's own tools."""
    header: list[str] | None = None
    busy = []
    for line in text.splitlines():
        tokens = line.split()
        if header is None:
            if "PID" in tokens and any("%CPU" in t for t in tokens):
                header = []
                for t in tokens:
                    header += ["S", "%CPU"] if t == "S[%CPU]" else [t]
            continue
        if len(tokens) < len(header) or not tokens[0].isdigit():
            continue
        parts = line.split(None, len(header) - 1)
        try:
            cpu = float(parts[header.index("%CPU")])
        except ValueError:
            continue
        name = parts[-1].split()[0].rsplit("/", 1)[-1] if parts[-1].split() else "?"
        if cpu >= min_cpu and name not in _OWN:
            busy.append(BusyProcess(int(tokens[0]), cpu, parts[-1][:60]))
    return tuple(sorted(busy, key=lambda b: -b.cpu_pct))


def parse_state(text: str) -> PhoneState:
    sec = split_sections(text)
    level, temp = parse_battery(sec.get("battery", ""))
    zones = [z for z in parse_thermal(sec.get("thermal", "")) if z.temp_c is not None]
    hottest = max(zones, key=lambda z: z.temp_c, default=None)
    return PhoneState(
        battery_level=level,
        battery_temp_c=temp,
        charging=parse_charging(sec.get("battery", "")),
        screen_on=parse_screen(sec.get("power", "")),
        thermal_status=parse_thermal_status(sec.get("thermalservice", "")),
        hottest_c=hottest.temp_c if hottest else None,
        hottest_zone=(hottest.type or hottest.name) if hottest else "",
        busy=parse_top(sec.get("top", "")),
    )


def warnings(state: PhoneState) -> list[str]:
    """What makes a measurement less trustworthy, one short line each (not a refusal)."""
    out = []
    if state.hottest_c is not None and state.hottest_c >= HOT_C:
        out.append(f"hot: {state.hottest_zone} at {state.hottest_c:.1f}°C (--require-cool waits)")
    if state.thermal_status is not None and state.thermal_status >= THERMAL_MODERATE:
        out.append(f"thermal status {state.thermal_status} (throttling)")
    if state.battery_level is not None and state.battery_level < LOW_BATTERY and not state.charging:
        out.append(f"battery low: {state.battery_level}% and not charging")
    if state.screen_on is False:
        out.append("screen off (the APK runner needs it on; some phones throttle)")
    if state.busy:
        names = ", ".join(f"{b.name.split()[0]} {b.cpu_pct:.0f}%" for b in state.busy[:3])
        out.append(f"busy: {names}")
    return out
