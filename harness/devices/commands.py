"""``harness devices`` and ``harness probe``."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from harness.devices.adb import list_devices, resolve_servers, select_devices
from harness.devices.device import Device
from harness.devices.info import DeviceInfo
from harness.devices.options import AdbOption, DeviceOption, JsonOption
from harness.ui import console


def _ghz(khz: int) -> str:
    return f"{khz / 1e6:.2f}"


def _cpu_summary(info: DeviceInfo) -> str:
    if not info.cpu_max_khz:
        return "?"
    groups: dict[int, int] = {}
    for khz in info.cpu_max_khz:
        groups[khz] = groups.get(khz, 0) + 1
    return " + ".join(f"{n}x{_ghz(k)}" for k, n in sorted(groups.items(), reverse=True)) + " GHz"


def devices(
    device: DeviceOption = None,
    adb: AdbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List connected phones (real and virtual) with SoC, GPU, Android, CPU, battery, thermals."""
    servers = resolve_servers(adb)
    entries = list_devices(servers)
    chosen = select_devices(entries, device) if device else entries
    rows = []
    for entry in chosen:
        info = Device(entry).probe() if entry.state == "device" else None
        rows.append((entry, info))
    if as_json:
        payload = [
            {
                "serial": e.serial,
                "state": e.state,
                "server": e.server.address,
                "model": e.model_code,
                **({"info": i.to_json()} if i else {}),
            }
            for e, i in rows
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="Devices", title_justify="left")
    for col in ("serial", "model", "SoC", "GPU", "Android", "CPU", "battery", "state"):
        table.add_column(col, overflow="fold")
    for entry, info in rows:
        if info is None:
            table.add_row(
                entry.serial, entry.model_code or "?", "", "", "", "", "", f"[red]{entry.state}[/]"
            )
            continue
        model = info.model + (" [magenta](virtual)[/]" if info.virtual else "")
        battery = (
            f"{info.battery_level}% {info.battery_temp_c:.0f}°C"
            if info.battery_level is not None and info.battery_temp_c is not None
            else "?"
        )
        cpu = f"{info.cores}c {_ghz(max(info.cpu_max_khz))}GHz" if info.cpu_max_khz else "?"
        table.add_row(
            entry.serial,
            model,
            info.soc,
            info.gpu,
            f"{info.android_release}/{info.sdk}",
            cpu,
            battery,
            "[green]ok[/]",
        )
    if not rows:
        console().print(
            "no devices connected; start a virtual one: "
            "[bold]harness virtual start --profile SM-G973F[/]"
        )
        return
    console().print(table)


def probe(
    device: DeviceOption = None,
    adb: AdbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show everything the harness reads from one phone (getprop, GPU, CPU, thermal, battery)."""
    entries = list_devices(resolve_servers(adb))
    (entry,) = select_devices(entries, device[:1] if device else [])[:1]
    info = Device(entry).probe()
    if as_json:
        typer.echo(json.dumps(info.to_json(), indent=2))
        return
    table = Table(
        title=f"{info.serial}: {info.model}" + (" (virtual)" if info.virtual else ""),
        title_justify="left",
        show_header=False,
    )
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("model", f"{info.model} ({info.manufacturer})"),
        ("SoC", info.soc),
        ("GPU", f"{info.gpu} ({info.gpu_vendor})" if info.gpu_vendor else info.gpu),
        ("GLES", info.gles or "?"),
        ("board platform", info.board_platform),
        ("hardware / egl", f"{info.hardware} / {info.egl}"),
        (
            "ABI",
            info.abi
            + (f" (emulating {info.props.get('ro.harness.emulated_abi')})" if info.virtual else ""),
        ),
        ("Android", f"{info.android_release} (SDK {info.sdk})"),
        ("CPU", f"{info.cores} cores: {_cpu_summary(info)}; big cores {info.big_cores()}"),
        (
            "thermal",
            ", ".join(f"{z.type} {z.temp_c:.1f}°C" for z in info.thermal if z.temp_c is not None)
            or "?",
        ),
        ("battery", f"{info.battery_level}% at {info.battery_temp_c}°C"),
        ("virtual", f"yes (profile {info.profile})" if info.virtual else "no"),
        (
            "GPU delegate",
            info.gpu_delegate
            or "unknown (the TFLite runtime in the app or benchmark_model binary decides)",
        ),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    console().print(table)
