"""``harness virtual start|stop|list|profiles``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from harness.devices.adb import resolve_servers
from harness.devices.options import AdbOption, JsonOption
from harness.devices.virtual import manager
from harness.devices.virtual.profiles import available_profiles, load_profile
from harness.ui import console

app = typer.Typer(
    help="Virtual phones: ADB devices on 127.0.0.1 for machines without a phone.",
    no_args_is_help=True,
)


@app.command()
def start(
    profile: Annotated[str, typer.Option("--profile", "-p", help="Device profile, e.g. SM-G973F.")],
    port: Annotated[
        int | None,
        typer.Option("--port", help="TCP port on 127.0.0.1 (default: first free from 7401)."),
    ] = None,
    faults: Annotated[
        str, typer.Option("--faults", help="Comma-separated fault profiles to emulate.")
    ] = "",
    adb: AdbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a virtual phone and register it with the adb server (adb connect)."""
    record = manager.start(
        profile,
        port=port,
        servers=resolve_servers(adb),
        faults=tuple(f for f in faults.split(",") if f),
    )
    if as_json:
        typer.echo(json.dumps(asdict(record), indent=2))
        return
    console().print(
        f"started virtual [bold]{record.model}[/] as [bold]{record.serial}[/] "
        f"(profile {record.profile}, pid {record.pid}); try: harness devices"
    )


@app.command()
def stop(
    selector: Annotated[
        str, typer.Argument(help="Serial, port, profile or model; 'all' for every one.")
    ] = "all",
    wipe: Annotated[bool, typer.Option("--wipe", help="Also delete the phone's storage.")] = False,
) -> None:
    """Stop virtual phones (and adb disconnect them)."""
    for record in manager.stop(selector, wipe=wipe):
        console().print(f"stopped {record.serial} ({record.model})")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List running virtual phones."""
    records = manager.list_virtual()
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in records], indent=2))
        return
    if not records:
        console().print("no virtual phones running")
        return
    table = Table(title="Virtual phones", title_justify="left")
    for col in ("serial", "model", "profile", "pid", "faults", "adb servers"):
        table.add_column(col)
    for r in records:
        table.add_row(
            r.serial,
            r.model,
            r.profile,
            str(r.pid),
            ",".join(r.faults) or "-",
            ", ".join(r.servers),
        )
    console().print(table)


@app.command()
def profiles(as_json: JsonOption = False) -> None:
    """List the device profiles a virtual phone can be started with."""
    loaded = [load_profile(name) for name in available_profiles()]
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "model": p.model,
                        "description": p.description,
                        "gpu_backends": list(p.gpu_backends),
                    }
                    for p in loaded
                ],
                indent=2,
            )
        )
        return
    table = Table(title="Device profiles", title_justify="left")
    for col in ("profile", "model", "description", "GPU backends"):
        table.add_column(col)
    for p in loaded:
        table.add_row(p.name, p.model, p.description, ",".join(p.gpu_backends))
    console().print(table)
