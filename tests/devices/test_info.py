"""Device-info parsers on captured text (getprop, dumpsys, sysfs)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.devices import info

GETPROP = """[ro.board.platform]: [universal9820]
[ro.build.version.release]: [12]
[ro.build.version.sdk]: [31]
[ro.hardware]: [exynos9820]
[ro.hardware.chipname]: [exynos9820]
[ro.hardware.egl]: [mali]
[ro.product.cpu.abi]: [arm64-v8a]
[ro.product.manufacturer]: [samsung]
[ro.product.model]: [SM-G973F]
[persist.sys.locale]: [en-GB]
[ro.empty]: []
garbage line
"""

BATTERY = """Current Battery Service state:
  AC powered: false
  USB powered: true
  level: 54
  scale: 100
  voltage: 3950
  temperature: 318
  technology: Li-ion
"""


def _probe_text(
    getprop=GETPROP,
    battery=BATTERY,
    gles="GLES: ARM, Mali-G76, OpenGL ES 3.2 v1.r32p1",
    cpu="cpu0 1950000\ncpu1 1950000\ncpu4 2314000\ncpu6 2730000\ncpu7 2730000\n",
    thermal="thermal_zone0|BIG|41000\nthermal_zone1|G3D|36\nthermal_zone2|bad|\n",
):
    s = "@@harness-section "
    return (
        f"{s}getprop\n{getprop}{s}battery\n{battery}{s}gles\n{gles}\n{s}cpufreq\n{cpu}"
        f"{s}thermal\n{thermal}{s}end\n"
    )


def test_parse_probe_real_s10():
    d = info.parse_probe("R58M123", _probe_text())
    assert (d.model, d.soc, d.gpu, d.gpu_vendor) == ("SM-G973F", "Exynos 9820", "Mali-G76", "ARM")
    assert (d.android_release, d.sdk, d.abi, d.virtual) == ("12", 31, "arm64-v8a", False)
    assert d.cpu_max_khz == (1950000, 1950000, 2314000, 2730000, 2730000)
    assert d.big_cores() == [3, 4]
    assert d.battery_level == 54 and d.battery_temp_c == 31.8
    assert [(z.type, z.temp_c) for z in d.thermal] == [("BIG", 41.0), ("G3D", 36.0), ("bad", None)]
    assert d.props["ro.empty"] == ""


def test_soc_fallbacks():
    assert info.soc_name({"ro.soc.model": "SM8150"}) == "Snapdragon 855"
    assert info.soc_name({"ro.hardware.chipname": "exynos7884B"}) == "Exynos 7884"
    assert info.soc_name({"ro.board.platform": "msmnile"}) == "Snapdragon 855"
    assert info.soc_name({"ro.board.platform": "mt6765"}) == "mt6765"
    assert info.soc_name({}) == "unknown"


def test_virtual_marker_and_missing_sections():
    text = _probe_text(getprop="[ro.product.cpu.abi]: [harness-virtual]\n", battery="", gles="")
    d = info.parse_probe("127.0.0.1:7401", text)
    assert d.virtual and d.battery_level is None and d.gpu == "unknown"
    assert info.parse_probe("x", "").model == "unknown"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parsers_never_raise(text):
    info.parse_getprop(text)
    info.parse_battery(text)
    info.parse_gles(text)
    info.parse_cpufreq(text)
    info.parse_thermal(text)
    info.parse_probe("s", text)
    info.parse_probe("s", "@@harness-section getprop\n" + text)


SNAPSHOT = """devices/system/cpu/cpu0/cpufreq/scaling_cur_freq:1950000
devices/system/cpu/cpu10/cpufreq/scaling_cur_freq:2730000
devices/system/cpu/cpu4/cpufreq/scaling_cur_freq:2314000
class/thermal/thermal_zone0/type:BIG
class/thermal/thermal_zone1/type:G3D
class/thermal/thermal_zone2/type:locked
class/thermal/thermal_zone0/temp:41000
class/thermal/thermal_zone1/temp:36
grep: class/thermal/thermal_zone9/temp: Permission denied
"""


def test_parse_snapshot_of_grep_output():
    """SNAPSHOT_SCRIPT's one grep: cores ordered by number, zones by type, unreadable skipped."""
    snap = info.parse_snapshot(SNAPSHOT)
    assert snap["cpu_khz"] == [1950000, 2314000, 2730000]
    assert snap["zones"] == {"BIG": 41.0, "G3D": 36.0, "locked": None}
    assert info.parse_snapshot("") == {"zones": {}, "cpu_khz": []}
