"""The virtual phone's emulated heating (harness/virtual/thermal.py): the thermal model's
arithmetic, the files the harness reads, and the frequency cap."""

from __future__ import annotations

import math

import pytest

from harness.virtual import thermal


def _phone(tmp_path, cores=(1950000, 2730000), zones=(("BIG", 38.0), ("G3D", 34.0))):
    root = tmp_path / "root"
    cpus = []
    for n, khz in enumerate(cores):
        d = root / f"sys/devices/system/cpu/cpu{n}/cpufreq"
        d.mkdir(parents=True)
        (d / "cpuinfo_max_freq").write_text(f"{khz}\n")
        cpus.append((str(d), khz))
    zone_dirs = []
    for n, (kind, temp) in enumerate(zones):
        z = root / f"sys/class/thermal/thermal_zone{n}"
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(f"{round(temp * 1000)}\n")
        zone_dirs.append((str(z), temp))
    (root / ".harness").mkdir()
    return root, cpus, zone_dirs


def test_heating_follows_the_first_order_model(tmp_path):
    root, cpus, zones = _phone(tmp_path)
    th = thermal.Thermal(root, dict(thermal.DEFAULTS), 1.0, zones, cpus, t=0.0)
    th.advance(60.0, load=1.0)  # 60 s at full load: excess = 0.25 * 120 * (1 - e^-0.5)
    assert th.excess == pytest.approx(30.0 * (1 - math.exp(-0.5)))
    assert not th.capped and th.hottest == pytest.approx(38.0 + th.excess)
    th.advance(70.0, load=1.0)  # past 50 °C: the cap
    assert th.hottest >= 50.0 and th.capped and th.factor == pytest.approx(100 / 65)
    th.write()
    assert (root / "sys/class/thermal/thermal_zone0/temp").read_text().strip() == str(
        round(th.hottest * 1000)
    )
    cur = root / "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq"
    assert int(cur.read_text()) == round(2730000 * 0.65)
    th.advance(70.0 + 600.0, load=0.0)  # ten idle minutes: cooled below the release point
    assert not th.capped and th.excess < 1.0
    th.write()
    assert int(cur.read_text()) == 2730000


def test_speed_multiplies_the_model_clock(tmp_path):
    root, cpus, zones = _phone(tmp_path)
    slow = thermal.Thermal(root, dict(thermal.DEFAULTS), 1.0, zones, cpus, t=0.0)
    fast = thermal.Thermal(root, dict(thermal.DEFAULTS), 20.0, zones, cpus, t=0.0)
    slow.advance(180.0, 1.0)
    fast.advance(9.0, 1.0)
    assert fast.excess == pytest.approx(slow.excess)


def test_heating_is_off_unless_asked(tmp_path):
    root, _, _ = _phone(tmp_path)
    assert thermal.load(root, {}) is None
    assert thermal.load(root, {"thermal_speed": 0}) is None
    base = {"thermal_zone0": 38.0, "thermal_zone1": 34.0}
    th = thermal.load(root, {"thermal_speed": 1.0, "thermal_base": base,
                             "emulation": {"cap_pct": 50}})  # fmt: skip
    assert th is not None and th.params["cap_pct"] == 50 and th.hottest == pytest.approx(38.0)
