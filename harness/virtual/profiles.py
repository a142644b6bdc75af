"""Virtual phone profiles: data in ``android_assets/devices/*.toml``.

A profile gives the getprop values, GPU strings (what ``dumpsys SurfaceFlinger`` prints), CPU
clusters (sysfs max frequencies), battery and thermal readings of one phone model, plus which
GPU backends exist. A virtual phone built from it reports ``ro.product.cpu.abi=harness-virtual``
so nothing downstream can mistake it for the real phone.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness import config
from harness.devices.info import VIRTUAL_ABI
from harness.errors import UsageError
from harness.tflite.gpu_delegates import DEFAULT_GENERATION, generation

# ABIs a virtual phone may present instead (``harness virtual start --abi``): then the harness
# takes a real phone's path (the ABI's pinned binary from the asset manifest, pushed and run).
REAL_ABIS = ("arm64-v8a", "armeabi-v7a", "x86_64", "x86")
VIRTUAL_FEATURES = ["shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir"]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    abi: str
    props: dict[str, str]
    gpu_vendor: str
    gpu_renderer: str
    gles_version: str
    gpu_backends: tuple[str, ...]
    cpu_max_khz: tuple[int, ...]  # one entry per core, cpu0 first
    battery_level: int
    battery_temp_c: float
    thermal: tuple[tuple[str, float], ...]
    faults: tuple[str, ...] = field(default=())
    # Bits the GPU computes GLSL `mediump` in: 16 on Mali (Arm's guide); None: not established.
    mediump_bits: int | None = None
    mediump_source: str = "not established"
    delegate: str = DEFAULT_GENERATION  # the GPU delegate generation it runs by default
    delegate_why: str = "not established: no source says which runtime this phone's app used"
    # Emulation knobs (``[emulation]``): GPU kernel compile cost, heating and frequency cap
    # (harness/virtual/thermal.py, benchmark_model/kernel_cache.py). Emulated, not measured.
    emulation: dict = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.props["ro.product.model"]

    def getprop(self, abi: str = "") -> dict[str, str]:
        """The full property set a virtual phone reports: the virtual ABI, or ``abi`` (a real
        one, ``--abi``); marked virtual either way (``ro.harness.virtual``)."""
        props = dict(self.props)
        props["ro.product.cpu.abi"] = abi or VIRTUAL_ABI
        props["ro.product.cpu.abilist"] = abi or VIRTUAL_ABI
        props["ro.harness.virtual"] = "1"
        props["ro.harness.profile"] = self.name
        props["ro.harness.emulated_abi"] = self.abi
        props.setdefault("ro.serialno", "virtual-" + self.name)
        return props

    def mediump_label(self) -> str:
        return f"{self.mediump_bits}-bit" if self.mediump_bits else "not established"

    def banner_props(self) -> dict[str, str]:
        return {
            "ro.product.name": self.props.get("ro.product.name", self.name),
            "ro.product.model": self.model.replace(" ", "_"),
            "ro.product.device": self.props.get("ro.product.device", self.name),
        }


PHONE_FAULTS = ("unauthorized",)  # faults of the ADB endpoint itself (transport.py)


def known_faults() -> tuple[str, ...]:
    from harness.virtual.benchmark_model.gpu_emulation import FAULT_NAMES

    return (*PHONE_FAULTS, *FAULT_NAMES)


def resolve_delegate(
    profile: Profile, requested: str | None = None, faults: tuple[str, ...] = ()
) -> str:
    """The GPU delegate generation a phone runs: ``requested`` (``--delegate``), else the
    profile's default; ``none`` among the requested faults ("no emulated bug") selects the
    current delegate unless a generation is requested. Unknown names are a usage error."""
    if requested:
        return generation(requested).name
    if "none" in faults:
        return DEFAULT_GENERATION
    return generation(profile.delegate).name


def resolve_faults(profile: Profile, requested: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The faults a phone runs with: the profile's defaults (``[virtual] faults``) plus the
    requested ones; ``none`` drops the defaults (``none,NAME`` = only NAME). Unknown names are
    a usage error."""
    from harness.virtual.benchmark_model.gpu_emulation import RETIRED_FAULTS

    known = known_faults()
    faults = list(profile.faults)
    for name in requested:
        if name == "none":
            faults = []
            continue
        if name in RETIRED_FAULTS:
            raise UsageError(f"fault {name!r} was removed: {RETIRED_FAULTS[name]}")
        if name not in known:
            raise UsageError(f"unknown fault {name!r}; known: none, {', '.join(known)}")
        if name not in faults:
            faults.append(name)
    for name in faults:
        if name not in known:
            raise UsageError(f"profile {profile.name}: unknown default fault {name!r}")
    return tuple(faults)


def check_abi(abi: str) -> str:
    """'' (the virtual ABI) or one of REAL_ABIS; anything else is a usage error."""
    if abi and abi not in REAL_ABIS:
        raise UsageError(
            f"--abi {abi}: not an ABI a virtual phone can present ({', '.join(REAL_ABIS)})"
        )
    return abi


def profiles_dir() -> Path:
    return config.assets_dir() / "devices"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.toml"))


def load_profile(name: str) -> Profile:
    path = profiles_dir() / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available_profiles()) or "none"
        raise UsageError(f"unknown device profile {name!r}; available: {known}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        props = {str(k): str(v) for k, v in data["props"].items()}
        if "ro.product.model" not in props:
            raise KeyError("props.ro.product.model")
        gpu = data.get("gpu", {})
        cores: list[int] = []
        for cluster in data.get("cpu", {}).get("clusters", []):
            cores += [int(cluster["max_khz"])] * int(cluster["cores"])
        battery = data.get("battery", {})
        virtual = data.get("virtual", {})
        return Profile(
            name=name,
            description=str(data.get("description", name)),
            abi=str(data.get("abi", "arm64-v8a")),
            props=props,
            gpu_vendor=str(gpu.get("vendor", "")),
            gpu_renderer=str(gpu.get("renderer", "")),
            gles_version=str(gpu.get("gles", "")),
            gpu_backends=tuple(gpu.get("backends", ["gl"])),
            cpu_max_khz=tuple(cores),
            battery_level=int(battery.get("level", 100)),
            battery_temp_c=float(battery.get("temperature_c", 25.0)),
            thermal=tuple((str(z["type"]), float(z["temp_c"])) for z in data.get("thermal", [])),
            faults=tuple(virtual.get("faults", [])),
            mediump_bits=int(gpu["mediump_bits"]) if "mediump_bits" in gpu else None,
            mediump_source=str(gpu.get("mediump_source", "not established")),
            delegate=str(virtual.get("delegate", DEFAULT_GENERATION)),
            delegate_why=str(virtual.get("delegate_why", Profile.delegate_why)),
            emulation=dict(data.get("emulation", {})),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: invalid device profile ({exc})") from exc
