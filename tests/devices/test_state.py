"""Phone state before measuring: pure parsers on captured text, and the warnings they give."""

from __future__ import annotations

from harness.devices import state

BATTERY = """Current Battery Service state:
  AC powered: false
  USB powered: false
  Wireless powered: false
  status: 3
  health: 2
  present: true
  level: 14
  scale: 100
  temperature: 352
"""
TOP = """Tasks: 612 total,   2 running, 610 sleeping,   0 stopped,   0 zombie
  PID USER         PR  NI VIRT  RES  SHR S[%CPU] %MEM     TIME+ ARGS
 4321 u0_a123      10 -10 5.1G 210M 120M S 187.0   3.1  12:01.22 com.example.game
 5555 shell        20   0  10G 4.1M 3.2M R  3.0   0.0   0:00.02 top -b -n 1 -m 12
  987 system       18  -2  13G 300M 200M S 31.5   4.0  99:00.00 system_server
  111 root         20   0    0    0    0 S  0.3   0.0   0:01.00 [kworker/u16:2]
"""


def _probe(**sections: str) -> str:
    return "".join(f"@@harness-section {k}\n{v}\n" for k, v in sections.items())


def test_parse_state_of_a_hot_low_busy_phone():
    text = _probe(
        battery=BATTERY,
        power="  mWakefulness=Asleep",
        thermalservice="Thermal Status: 3",
        thermal="thermal_zone0|BIG|51200\nthermal_zone1|LITTLE|44000\nthermal_zone2|bad|",
        top=TOP,
        end="",
    )
    s = state.parse_state(text)
    assert (s.battery_level, s.battery_temp_c, s.charging) == (14, 35.2, False)
    assert s.screen_on is False and s.thermal_status == 3
    assert (s.hottest_zone, s.hottest_c) == ("BIG", 51.2)
    assert [(b.pid, b.cpu_pct) for b in s.busy] == [(4321, 187.0), (987, 31.5)]  # not top itself
    warned = state.warnings(s)
    assert [w.split(":")[0].split(" ")[0] for w in warned] == [
        "hot", "thermal", "battery", "screen", "busy",
    ]  # fmt: skip
    assert "com.example.game 187%" in warned[-1]


def test_a_calm_phone_has_no_warnings_and_junk_reads_as_unknown():
    calm = state.parse_state(
        _probe(
            battery=BATTERY.replace("AC powered: false", "AC powered: true"),
            power="Display Power: state=ON",
            thermal="thermal_zone0|BIG|38000",
            top=TOP.split("\n 4321")[0],
        )
    )
    assert calm.charging and calm.screen_on and state.warnings(calm) == []
    junk = state.parse_state("no sections \x00 at all\n[[[")
    assert junk == state.PhoneState() and state.warnings(junk) == []
    assert state.parse_charging("  status: 2\n") is True  # charging by status alone
