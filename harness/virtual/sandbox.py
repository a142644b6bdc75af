"""The virtual phone's filesystem: a host folder standing for the device's ``/``.

Device paths (``/data/local/tmp``, ``/sdcard``, ``/sys/...``) map under ``root``. File transfers
are confined to it: ``..`` and symlinks cannot reach outside. Shell commands run on the host's
``/bin/sh`` with device paths rewritten into the sandbox; this confines where files land, but the
shell itself is not a jail: it runs as the phone's user, for clients that authenticated with one
of that user's adb keys (transport.py; docs/virtual-phone.md "Who can use it").
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
from pathlib import Path

from harness import config
from harness.virtual import android_tools
from harness.virtual.benchmark_model import client as bm_client
from harness.virtual.profiles import Profile

_CLIENT = Path(bm_client.__file__).resolve()
_TOOLS = Path(android_tools.__file__).resolve()

# Top-level device folders that live in the sandbox. Anything else (/bin/sh, /dev/null, /proc)
# is the host's, like the toybox tools a phone's shell provides.
DEVICE_ROOTS = ("data", "sdcard", "storage", "sys", "system", "vendor", "odm", "mnt", "product")
_ROOT_RE = re.compile(r"(?<![\w./-])/(?:{})(?=[/\s'\";:|&)<>]|$)".format("|".join(DEVICE_ROOTS)))


class SandboxEscape(ValueError):
    """A device path resolves outside the sandbox."""


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._root_bytes = str(self.root).encode()
        self.fork_server = False  # set by the phone once its benchmark_model fork server runs

    # -- paths --------------------------------------------------------------------------------
    def host_path(self, device_path: str) -> Path:
        """Map an absolute device path into the sandbox; refuse anything that escapes it."""
        if not device_path.startswith("/"):
            device_path = "/data/local/tmp/" + device_path  # adbd's cwd for relative sync paths
        if "\0" in device_path:
            raise SandboxEscape("NUL in path")
        normalized = posixpath.normpath(device_path).lstrip("/")
        if device_path.rstrip("/") in ("/storage/emulated/0", "/storage/self/primary"):
            normalized = "sdcard"
        elif normalized.startswith(("storage/emulated/0/", "storage/self/primary/")):
            normalized = "sdcard/" + normalized.split("/", 3)[3]
        candidate = self.root / normalized
        # Resolve symlinks of the part that exists; the result must stay inside the root.
        resolved = Path(os.path.realpath(candidate))
        if resolved != self.root and self.root not in resolved.parents:
            raise SandboxEscape(f"{device_path} resolves outside the device")
        return candidate

    def rewrite_command(self, command: str) -> str:
        root = str(self.root)
        return _ROOT_RE.sub(lambda m: root + m.group(0), command)

    def scrub(self, data: bytes) -> bytes:
        """Turn sandbox paths in command output back into device paths."""
        return data.replace(self._root_bytes, b"") if self._root_bytes in data else data

    def env(self) -> dict[str, str]:
        bin_dir = self.root / "system" / "bin"
        return {
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.root),
            "TMPDIR": str(self.root / "data" / "local" / "tmp"),
            "ANDROID_DATA": str(self.root / "data"),
            "EXTERNAL_STORAGE": str(self.root / "sdcard"),
            "LANG": "C.UTF-8",
            "HARNESS_VIRTUAL_ROOT": str(self.root),
            "HARNESS_VIRTUAL_PYTHON": sys.executable,
            "PYTHONPATH": str(config.REPO_ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HARNESS_VIRTUAL_TOOLS": str(_TOOLS),  # pm, am, logcat (android_tools.py)
            # Read by the benchmark_model launcher: hand invocations to the fork server.
            **({"HARNESS_VIRTUAL_CLIENT": str(_CLIENT)} if self.fork_server else {}),
        }

    # -- building -----------------------------------------------------------------------------
    def build(
        self,
        profile: Profile,
        faults: tuple[str, ...] = (),
        abi: str = "",
        delegate: str | None = None,
    ) -> None:
        """Create (or refresh) the device tree; files the harness pushed earlier are kept."""
        r = self.root
        for sub in (
            "data/local/tmp",
            "sdcard",
            "storage/emulated",
            "system/bin",
            ".harness/dumpsys",
        ):
            (r / sub).mkdir(parents=True, exist_ok=True)
        link = r / "storage" / "emulated" / "0"
        if not link.is_symlink():
            link.symlink_to("../../sdcard")
        props = profile.getprop(abi)
        props["ro.harness.faults"] = ",".join(faults)  # what this virtual phone emulates
        delegate = delegate or profile.delegate
        props["ro.harness.gpu_delegate"] = delegate  # its GPU delegate generation
        _write(
            r / ".harness" / "props", "".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items()))
        )
        _write(r / ".harness" / "dumpsys" / "battery", _battery_text(profile))
        _write(r / ".harness" / "dumpsys" / "power", "  mWakefulness=Awake\n")
        _write(r / ".harness" / "dumpsys" / "thermalservice", "Thermal Status: 0\n")
        if not (r / ".harness" / "top").exists():  # busy processes a test may list
            _write(r / ".harness" / "top", "")
        _write(
            r / ".harness" / "dumpsys" / "SurfaceFlinger",
            f"GLES: {profile.gpu_vendor}, {profile.gpu_renderer}, {profile.gles_version}\n",
        )
        virtual = {
            "profile": profile.name,
            "gpu_backends": list(profile.gpu_backends),
            "faults": list(faults),
            "gpu_delegate": delegate,
            "mediump_bits": profile.mediump_bits,
            "model": profile.model,
            "emulation": profile.emulation,  # compile cost, heating (emulated: thermal.py)
        }
        _write(r / ".harness" / "virtual.json", json.dumps(virtual, indent=2) + "\n")
        for n, khz in enumerate(profile.cpu_max_khz):
            freq = r / "sys/devices/system/cpu" / f"cpu{n}" / "cpufreq"
            freq.mkdir(parents=True, exist_ok=True)
            for name in ("cpuinfo_max_freq", "scaling_max_freq", "scaling_cur_freq"):
                _write(freq / name, f"{khz}\n")
        for n, (zone_type, temp_c) in enumerate(profile.thermal):
            zone = r / "sys/class/thermal" / f"thermal_zone{n}"
            zone.mkdir(parents=True, exist_ok=True)
            _write(zone / "type", zone_type + "\n")
            _write(zone / "temp", f"{round(temp_c * 1000)}\n")
        _write_exec(r / "system/bin/getprop", _GETPROP)
        _write_exec(r / "system/bin/dumpsys", _DUMPSYS)
        _write_exec(r / "system/bin/top", _TOP)
        for tool in ("pm", "am", "logcat"):
            _write_exec(r / "system/bin" / tool, _TOOL_LAUNCHER.format(tool=tool))
        _write(r / ".harness" / "logcat", "")  # a (re)started phone has an empty log buffer
        sh = r / "system/bin/sh"
        if not sh.is_symlink():
            sh.symlink_to("/bin/sh")


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _write_exec(path: Path, text: str) -> None:
    _write(path, text)
    path.chmod(0o755)


def _battery_text(p: Profile) -> str:
    return (
        "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n"
        f"  status: 2\n  health: 2\n  present: true\n  level: {p.battery_level}\n  scale: 100\n"
        f"  voltage: 4212\n  temperature: {round(p.battery_temp_c * 10)}\n  technology: Li-ion\n"
    )


_GETPROP = r"""#!/bin/sh
# getprop for the virtual phone: props live in $HARNESS_VIRTUAL_ROOT/.harness/props
props="$HARNESS_VIRTUAL_ROOT/.harness/props"
if [ $# -eq 0 ]; then cat "$props"; exit 0; fi
awk -v k="[$1]: [" 'index($0, k) == 1 { v = substr($0, length(k) + 1); sub(/\]$/, "", v); print v; found = 1 }
  END { if (!found) print "" }' "$props"
"""

_TOOL_LAUNCHER = """#!/bin/sh
# {tool} for the virtual phone (harness/virtual/android_tools.py)
exec "$HARNESS_VIRTUAL_PYTHON" -S -E -B "$HARNESS_VIRTUAL_TOOLS" {tool} "$@"
"""

_TOP = r"""#!/bin/sh
# top for the virtual phone: the phone's processes are listed in .harness/top (empty: idle);
# the host's own load is not the phone's (toybox top -b -n 1 output format)
echo "Tasks: 1 total,   1 running,   0 sleeping,   0 stopped,   0 zombie"
echo "  PID USER         PR  NI VIRT  RES  SHR S[%CPU] %MEM     TIME+ ARGS"
cat "$HARNESS_VIRTUAL_ROOT/.harness/top" 2>/dev/null
exit 0
"""

_DUMPSYS = r"""#!/bin/sh
# dumpsys for the virtual phone: the services the device layer reads
f="$HARNESS_VIRTUAL_ROOT/.harness/dumpsys/$1"
if [ -n "$1" ] && [ -f "$f" ]; then cat "$f"; exit 0; fi
echo "Can't find service: $1" >&2
exit 0
"""
