"""Emulated heating and frequency capping of a virtual phone under load (opt-in).

A virtual phone runs on the host, which does not heat like a phone. When heating is on
(``harness virtual heat SERIAL --speed 1``; off by default so short runs stay steady), the
phone's ``benchmark_model`` drives a first-order thermal model while it runs inferences:

    d(excess)/dt = heat_c_per_s * load - excess / tau_s          (excess over the profile's temps)

with ``load`` the fraction of wall time the tool spends in its run loops (back-to-back
inferences; the restarts between invocations count as idle). Every thermal zone reads its
profile temperature plus ``excess``. When the hottest zone reaches ``trip_c`` the CPU and GPU
frequencies are capped to ``cap_pct`` % of their maximum (``scaling_cur_freq``,
``scaling_max_freq`` and ``/sys/kernel/gpu/gpu_clock`` change), heat production drops to
``cap_pct`` %, and every inference is stretched by ``100 / cap_pct``: after each ``invoke()``
the tool waits ``(100 / cap_pct - 1)`` times its measured duration, inside the timed span. The
cap lifts once the zone cools below ``release_c``. Between invocations the phone cools at the
same time constant (computed from the wall clock at the next invocation).

Everything here is **emulated** from the profile's ``[emulation]`` table (defaults below), not a
phone's measurement; the phone's log says so. ``speed`` (the test knob) multiplies the model's
clock: at speed 20 a 9-second run heats like a 3-minute one. Stdlib only (the tool imports it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULTS = {
    "heat_c_per_s": 0.25,  # °C per second at full load, before cooling
    "tau_s": 120.0,  # cooling time constant
    "trip_c": 50.0,  # hottest zone at which the frequency cap starts
    "release_c": 45.0,  # ... and below which it lifts
    "cap_pct": 65.0,  # capped frequency, % of max
    "gpu_max_mhz": 0.0,  # > 0: write /sys/kernel/gpu/gpu_clock (MHz)
}
UPDATE_S = 0.25  # wall seconds between state writes while running
STATE = ".harness/thermal.json"
NOTE = "Emulated heating on (harness virtual heat): temperatures and frequency caps are emulated."


@dataclass
class Thermal:
    root: Path
    params: dict
    speed: float
    zones: list[tuple[str, float]]  # (zone dir, base °C)
    cpus: list[tuple[str, int]]  # (cpufreq dir, max kHz)
    excess: float = 0.0
    capped: bool = False
    t: float = 0.0  # wall clock of the state
    busy_s: float = 0.0  # in the run loop since the last update
    last_call: float = 0.0  # wall clock of the last after_invoke

    # -- state ---------------------------------------------------------------------------------
    @property
    def hottest(self) -> float:
        return max((base for _, base in self.zones), default=25.0) + self.excess

    @property
    def factor(self) -> float:
        """How much longer an inference takes under the cap (1.0 uncapped)."""
        return 100.0 / self.params["cap_pct"] if self.capped else 1.0

    def advance(self, now: float, load: float) -> None:
        dt = max(0.0, now - self.t) * self.speed
        self.t = now
        if dt <= 0:
            return
        heat = (
            self.params["heat_c_per_s"]
            * load
            * (self.params["cap_pct"] / 100 if self.capped else 1)
        )
        tau = self.params["tau_s"]
        eq = heat * tau
        self.excess = eq + (self.excess - eq) * math.exp(-dt / tau)
        if not self.capped and self.hottest >= self.params["trip_c"]:
            self.capped = True
        elif self.capped and self.hottest < self.params["release_c"]:
            self.capped = False

    def write(self) -> None:
        for zone, base in self.zones:
            _put(Path(zone) / "temp", f"{round((base + self.excess) * 1000)}\n")
        cap = self.params["cap_pct"] / 100 if self.capped else 1.0
        for cpu, max_khz in self.cpus:
            khz = int(round(max_khz * cap))
            _put(Path(cpu) / "scaling_cur_freq", f"{khz}\n")
            _put(Path(cpu) / "scaling_max_freq", f"{khz}\n")
        if self.params["gpu_max_mhz"] > 0:
            gpu = self.root / "sys" / "kernel" / "gpu"
            gpu.mkdir(parents=True, exist_ok=True)
            _put(gpu / "gpu_clock", f"{int(round(self.params['gpu_max_mhz'] * cap))}\n")
        state = {"excess_c": self.excess, "capped": self.capped, "t": self.t}
        _put(self.root / STATE, json.dumps(state))

    # -- what the tool calls -------------------------------------------------------------------
    def after_invoke(self, seconds: float) -> None:
        """After one ``invoke()`` of ``seconds``: the emulated stretch (a wait) when capped,
        and the state every :data:`UPDATE_S`. The phone counts as loaded for the whole run
        loop (back-to-back iterations), not only inside ``invoke()``."""
        if self.capped:
            time.sleep(seconds * (self.factor - 1.0))
            seconds *= self.factor
        now = time.time()
        since = now - self.last_call if self.last_call else seconds
        self.busy_s += since if since < 0.5 else seconds
        self.last_call = now
        if now - self.t >= UPDATE_S:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        elapsed = max(now - self.t, 1e-9)
        self.advance(now, min(1.0, self.busy_s / elapsed))
        self.busy_s = 0.0
        self.write()


def _put(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)


def _base_temps(root: Path, config: dict) -> list[tuple[str, float]]:
    zones = sorted((root / "sys" / "class" / "thermal").glob("thermal_zone*"))
    base = config.get("thermal_base") or {}
    out = []
    for zone in zones:
        if zone.name in base:
            out.append((str(zone), float(base[zone.name])))
    return out


def load(root: str | os.PathLike | None, config: dict) -> Thermal | None:
    """The phone's thermal model, advanced (cooled) to now; None when heating is off."""
    speed = float(config.get("thermal_speed") or 0.0)
    if not root or speed <= 0:
        return None
    root = Path(root)
    params = {**DEFAULTS, **_params(config)}
    cpus = []
    for cpu in sorted((root / "sys/devices/system/cpu").glob("cpu*/cpufreq")):
        with contextlib.suppress(OSError, ValueError):
            cpus.append((str(cpu), int((cpu / "cpuinfo_max_freq").read_text().strip())))
    th = Thermal(root, params, speed, _base_temps(root, config), cpus, t=time.time())
    with contextlib.suppress(OSError, ValueError, TypeError):
        state = json.loads((root / STATE).read_text())
        th.excess, th.capped, th.t = (
            float(state["excess_c"]),
            bool(state["capped"]),
            float(state["t"]),
        )
    th.flush()  # cool for the idle time since the last run
    return th


def set_heating(selector: str, speed: float) -> list[str]:
    """Turn emulated heating on (``speed`` > 0: model seconds per wall second) or off (0) on
    running virtual phones; off also resets their temperatures and frequencies."""
    from harness.errors import UsageError
    from harness.virtual import manager

    if not math.isfinite(speed) or speed < 0 or speed > 1000:
        raise UsageError(f"--speed must be 0 (off) to 1000, got {speed}")
    records = manager.find(selector)
    if not records:
        raise manager.VirtualPhoneError(f"no running virtual phone matches {selector!r}")
    for record in records:
        root = Path(record.root)
        path = root / ".harness" / "virtual.json"
        data = json.loads(path.read_text())
        zones = sorted((root / "sys" / "class" / "thermal").glob("thermal_zone*"))
        base = data.get("thermal_base") or {
            z.name: int((z / "temp").read_text().strip()) / 1000.0 for z in zones
        }
        data["thermal_base"], data["thermal_speed"] = base, speed
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)
        (root / STATE).unlink(missing_ok=True)
        th = Thermal(root, {**DEFAULTS, **_params(data)}, 1.0, _base_temps(root, data), [],
                     t=time.time())  # fmt: skip
        th.cpus = [
            (str(c), int((c / "cpuinfo_max_freq").read_text().strip()))
            for c in sorted((root / "sys/devices/system/cpu").glob("cpu*/cpufreq"))
        ]
        th.write()  # base temperatures, uncapped frequencies
        if speed <= 0:
            (root / STATE).unlink(missing_ok=True)
    return [r.serial for r in records]


def _params(data: dict) -> dict:
    return {k: float(v) for k, v in (data.get("emulation") or {}).items() if k in DEFAULTS}
