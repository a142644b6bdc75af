"""Device information, parsed by pure functions from the text a phone prints.

One shell round trip (:data:`PROBE_SCRIPT`) collects getprop, ``dumpsys battery``, the GLES line
of ``dumpsys SurfaceFlinger``, per-core max CPU frequencies and thermal zones, in sections
separated by marker lines; :func:`parse_probe` turns that text into a :class:`DeviceInfo`.
Every parser accepts any text and returns what it could read (never raises).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

# The ABI a harness virtual phone reports (harness/virtual): the device layer knows the name,
# not the instrument; a virtual phone started with --abi arm64-v8a is treated as a phone.
VIRTUAL_ABI = "harness-virtual"

_SECTION = "@@harness-section "
PROBE_SCRIPT = "; ".join(
    [
        f"echo '{_SECTION}getprop'",
        "getprop",
        f"echo '{_SECTION}battery'",
        "dumpsys battery 2>/dev/null",
        f"echo '{_SECTION}gles'",
        "dumpsys SurfaceFlinger 2>/dev/null | grep -m 1 GLES",
        f"echo '{_SECTION}cpufreq'",
        "cd /sys/devices/system/cpu 2>/dev/null && for c in cpu[0-9]*; do "
        'echo "$c $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null)"; done',
        f"echo '{_SECTION}thermal'",
        "cd /sys/class/thermal 2>/dev/null && for z in thermal_zone*; do "
        'echo "$z|$(cat $z/type 2>/dev/null)|$(cat $z/temp 2>/dev/null)"; done',
        f"echo '{_SECTION}end'",
    ]
)

# SoC names for properties that only carry a platform/chip code (Android < 12 has no ro.soc.*).
_KNOWN_SOCS = {
    "universal9820": "Exynos 9820",
    "exynos9820": "Exynos 9820",
    "exynos9825": "Exynos 9825",
    "exynos990": "Exynos 990",
    "exynos7884b": "Exynos 7884",
    "exynos7884": "Exynos 7884",
    "exynos7904": "Exynos 7904",
    "msmnile": "Snapdragon 855",
    "sm8150": "Snapdragon 855",
    "kona": "Snapdragon 865",
    "lahaina": "Snapdragon 888",
    "taro": "Snapdragon 8 Gen 1",
    "kalama": "Snapdragon 8 Gen 2",
    "gs101": "Google Tensor",
    "gs201": "Google Tensor G2",
    "zuma": "Google Tensor G3",
}

_GETPROP_RE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]\s*$")


@dataclass(frozen=True)
class ThermalZone:
    name: str
    type: str
    temp_c: float | None


@dataclass(frozen=True)
class DeviceInfo:
    serial: str
    model: str
    manufacturer: str
    soc: str
    gpu: str
    gpu_vendor: str
    gles: str
    board_platform: str
    hardware: str
    egl: str
    abi: str
    android_release: str
    sdk: int | None
    cpu_max_khz: tuple[int, ...] = ()
    thermal: tuple[ThermalZone, ...] = ()
    battery_level: int | None = None
    battery_temp_c: float | None = None
    virtual: bool = False
    profile: str = ""
    gpu_delegate: str = ""  # the GPU delegate generation (virtual phones; unknown on real ones)
    props: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def cores(self) -> int:
        return len(self.cpu_max_khz)

    def big_cores(self) -> list[int]:
        """Indices of the cores with the highest max frequency (for taskset pinning)."""
        if not self.cpu_max_khz:
            return []
        top = max(self.cpu_max_khz)
        return [i for i, khz in enumerate(self.cpu_max_khz) if khz == top]

    def to_json(self, with_props: bool = False) -> dict:
        data = asdict(self)
        data["thermal"] = [asdict(z) for z in self.thermal]
        data["cpu_max_khz"] = list(self.cpu_max_khz)
        data["cores"] = self.cores
        if not with_props:
            data.pop("props")
        return data


def parse_getprop(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in text.splitlines():
        m = _GETPROP_RE.match(line.strip())
        if m:
            props[m.group(1)] = m.group(2)
    return props


def parse_battery(text: str) -> tuple[int | None, float | None]:
    """``dumpsys battery`` -> (level %, temperature °C); temperature is in tenths of °C."""
    level = temp = None
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "level" and value.lstrip("-").isdigit():
            level = int(value)
        elif key == "temperature" and value.lstrip("-").isdigit():
            temp = int(value) / 10.0
    return level, temp


def parse_gles(text: str) -> tuple[str, str, str]:
    """``GLES: ARM, Mali-G76, OpenGL ES 3.2 ...`` -> (vendor, renderer, version)."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("GLES:"):
            parts = [p.strip() for p in line[5:].split(",", 2)]
            parts += [""] * (3 - len(parts))
            return parts[0], parts[1], parts[2]
    return "", "", ""


def parse_cpufreq(text: str) -> tuple[int, ...]:
    """Lines ``cpuN KHZ`` -> max kHz per core, ordered by N (cores without a value skipped)."""
    freqs: dict[int, int] = {}
    for line in text.splitlines():
        m = re.match(r"^cpu(\d+)\s+(\d+)\s*$", line.strip())
        if m:
            freqs[int(m.group(1))] = int(m.group(2))
    return tuple(freqs[k] for k in sorted(freqs))


def parse_thermal(text: str) -> tuple[ThermalZone, ...]:
    """Lines ``thermal_zoneN|type|millidegrees`` -> zones (°C; some report whole degrees)."""
    zones = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3 or not parts[0].startswith("thermal_zone"):
            continue
        raw = parts[2].strip()
        temp = None
        if raw.lstrip("-").isdigit():
            value = int(raw)
            temp = value / 1000.0 if abs(value) >= 1000 else float(value)
        zones.append(ThermalZone(parts[0], parts[1].strip(), temp))
    return tuple(zones)


def split_sections(text: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(_SECTION):
            current = line[len(_SECTION) :].strip()
            sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


def soc_name(props: dict[str, str]) -> str:
    """Best SoC name: ro.soc.model (Android 12+), else a known chip/platform code."""
    soc = props.get("ro.soc.model", "").strip()
    if soc:
        return _KNOWN_SOCS.get(soc.lower(), soc)
    for key in ("ro.hardware.chipname", "ro.board.platform", "ro.hardware"):
        code = props.get(key, "").strip().lower()
        if code in _KNOWN_SOCS:
            return _KNOWN_SOCS[code]
    return props.get("ro.hardware.chipname") or props.get("ro.board.platform") or "unknown"


def parse_probe(serial: str, text: str) -> DeviceInfo:
    sec = split_sections(text)
    props = parse_getprop(sec.get("getprop", ""))
    level, temp = parse_battery(sec.get("battery", ""))
    vendor, renderer, gles = parse_gles(sec.get("gles", ""))
    abi = props.get("ro.product.cpu.abi", "")
    sdk_text = props.get("ro.build.version.sdk", "")
    virtual = abi == VIRTUAL_ABI or props.get("ro.harness.virtual") == "1"
    return DeviceInfo(
        serial=serial,
        model=props.get("ro.product.model", "unknown"),
        manufacturer=props.get("ro.product.manufacturer", ""),
        soc=soc_name(props),
        gpu=renderer or props.get("ro.hardware.egl", "unknown"),
        gpu_vendor=vendor,
        gles=gles,
        board_platform=props.get("ro.board.platform", ""),
        hardware=props.get("ro.hardware", ""),
        egl=props.get("ro.hardware.egl", ""),
        abi=abi,
        android_release=props.get("ro.build.version.release", ""),
        sdk=int(sdk_text) if sdk_text.isdigit() else None,
        cpu_max_khz=parse_cpufreq(sec.get("cpufreq", "")),
        thermal=parse_thermal(sec.get("thermal", "")),
        battery_level=level,
        battery_temp_c=temp,
        virtual=virtual,
        profile=props.get("ro.harness.profile", ""),
        gpu_delegate=props.get("ro.harness.gpu_delegate", ""),
        props=props,
    )


# One grep reads every file (a shell loop with $(cat) would fork ~40 processes: ~25 ms per
# snapshot, two snapshots per cell). Unreadable files are skipped (-s), as on locked-down phones.
SNAPSHOT_SCRIPT = (
    "cd /sys 2>/dev/null && grep -s -H . devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"
    " class/thermal/thermal_zone*/type class/thermal/thermal_zone*/temp"
)
_SNAPSHOT_LINE = re.compile(
    r"^(?:devices/system/cpu/cpu(?P<cpu>\d+)/cpufreq/scaling_cur_freq"
    r"|class/thermal/(?P<zone>thermal_zone\d+)/(?P<field>type|temp)):(?P<value>.*)$"
)


def parse_snapshot(text: str) -> dict:
    """Thermal zones (°C by type) and current CPU frequencies (kHz), before/after a cell, from
    SNAPSHOT_SCRIPT's ``path:value`` lines."""
    cpu_lines, zones_seen = [], {}
    for line in text.splitlines():
        m = _SNAPSHOT_LINE.match(line.strip())
        if not m:
            continue
        if m["cpu"] is not None:
            cpu_lines.append(f"cpu{m['cpu']} {m['value'].strip()}")
        else:
            zones_seen.setdefault(m["zone"], {})[m["field"]] = m["value"].strip().replace("|", " ")
    thermal = "\n".join(
        f"{name}|{f.get('type', '')}|{f.get('temp', '')}" for name, f in zones_seen.items()
    )
    zones = {z.type or z.name: z.temp_c for z in parse_thermal(thermal)}
    return {"zones": zones, "cpu_khz": list(parse_cpufreq("\n".join(cpu_lines)))}
