"""The main job end to end (``harness demo``).

Uses a connected SM-G973 if there is one; otherwise starts a virtual SM-G973F, lists the
devices, and probes it. Later stages (train -> convert -> bench -> report -> gate) are added
here as they land.
"""

from __future__ import annotations

from harness.devices import adb
from harness.devices.commands import devices as devices_command
from harness.devices.commands import probe as probe_command
from harness.devices.virtual import manager
from harness.ui import console


def run(adb_values: list[str] | None = None, keep: bool = False) -> None:
    servers = adb.resolve_servers(adb_values)
    entries = adb.list_devices(servers)
    real = [
        e
        for e in entries
        if e.state == "device" and adb.match(e, "SM-G973") and not e.serial.startswith("127.0.0.1:")
    ]
    started = None
    if real:
        serial = real[0].serial
        console().rule(f"[bold]Using the attached phone {serial}")
    else:
        console().rule("[bold]No SM-G973 attached: starting a virtual SM-G973F")
        started = manager.start("SM-G973F", servers=servers[:1])
        serial = started.serial
    try:
        console().rule("[bold]Devices")
        devices_command(device=None, adb=adb_values, as_json=False)
        console().rule(f"[bold]Probe {serial}")
        probe_command(device=[serial], adb=adb_values, as_json=False)
    finally:
        if started and not keep:
            manager.stop(started.serial)
            console().print(f"stopped virtual {started.serial} (keep it with --keep)")
