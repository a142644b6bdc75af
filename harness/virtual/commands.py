"""``harness virtual start|stop|list|profiles``."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from harness.devices.adb import resolve_servers
from harness.devices.options import AdbOption, JsonOption
from harness.tflite.gpu_delegates import GENERATIONS
from harness.ui import console
from harness.virtual import manager
from harness.virtual.chaos import parse_spec
from harness.virtual.profiles import available_profiles, load_profile

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
        str,
        typer.Option(
            "--faults",
            help="Comma-separated faults that are not a GPU kernel's arithmetic (opencl-missing, "
            "unauthorized), added to the profile's defaults; 'none' = no emulated bug: drops the "
            "defaults (none,NAME = only NAME) and, without --delegate, runs the current GPU "
            "delegate. See docs/virtual-phone.md.",
        ),
    ] = "",
    delegate: Annotated[
        str | None,
        typer.Option(
            "--delegate",
            metavar="GENERATION",
            help="GPU delegate generation the phone runs: "
            + ", ".join(GENERATIONS)
            + " (default: the profile's; see harness virtual profiles, docs/virtual-phone.md).",
        ),
    ] = None,
    chaos: Annotated[
        str,
        typer.Option(
            "--chaos",
            metavar="NAME[=ARG],...",
            help="Faults on demand (change them later with 'harness virtual chaos'): drop=BYTES, "
            "slow=BYTES_PER_S, storage-full[=FREE_BYTES], offline=SECONDS, crash[=MATCH], "
            "hang[=MATCH], truncate[=MATCH]. See docs/reliability.md.",
        ),
    ] = "",
    abi: Annotated[
        str,
        typer.Option(
            "--abi",
            help="Present a real ABI (arm64-v8a, armeabi-v7a, x86_64, x86) instead of "
            "harness-virtual: bench then takes a real phone's path (that ABI's pinned binary "
            "from the asset manifest). Still labelled virtual. See docs/virtual-phone.md.",
        ),
    ] = "",
    adb: AdbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a virtual phone and register it with the adb server (adb connect)."""
    spec = parse_spec(chaos) if chaos else None  # a bad spec fails before anything starts
    record = manager.start(
        profile,
        port=port,
        servers=resolve_servers(adb),
        faults=tuple(f for f in faults.split(",") if f),
        chaos=spec,
        abi=abi,
        delegate=delegate,
    )
    if as_json:
        typer.echo(json.dumps(asdict(record), indent=2))
        return
    console().print(
        f"started virtual [bold]{record.model}[/] as [bold]{record.serial}[/] "
        f"(profile {record.profile}"
        + (f", ABI {record.abi}" if record.abi else "")
        + f", GPU delegate {record.delegate}, pid {record.pid}); try: harness devices"
    )


@app.command()
def chaos(
    selector: Annotated[
        str, typer.Argument(help="Serial, port, profile or model; 'all' for every one.")
    ],
    spec: Annotated[
        str,
        typer.Argument(
            metavar="NAME[=ARG],...",
            help="The faults from now on, replacing the current ones ('none' clears them): "
            "drop=BYTES, slow=BYTES_PER_S, storage-full[=FREE_BYTES], offline=SECONDS, "
            "crash[=MATCH], hang[=MATCH], truncate[=MATCH].",
        ),
    ],
) -> None:
    """Inject faults into running virtual phones (drops, slow link, full storage, offline...).

    Link faults and benchmark_model crash/hang/truncated output; see docs/reliability.md.
    """
    parsed = parse_spec(spec)
    manager.apply_chaos(selector, parsed)
    for record in manager.find(selector):
        console().print(f"{record.serial}: chaos {spec.strip() or 'none'}")


@app.command()
def heat(
    selector: Annotated[
        str, typer.Argument(help="Serial, port, profile or model; 'all' for every one.")
    ],
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            help="Emulated heating under load: 1 = the profile's thermal model in real time, "
            "N = N times faster (tests), 0 = off (steady temperatures, the default).",
        ),
    ] = 1.0,
) -> None:
    """Emulate heating and a CPU/GPU frequency cap under load (harness/virtual/thermal.py).

    Temperatures and caps are emulated from the profile's [emulation] table, never measured;
    see docs/virtual-phone.md.
    """
    from harness.virtual import thermal

    for serial in thermal.set_heating(selector, speed):
        state = f"on, speed {speed:g}" if speed > 0 else "off"
        console().print(f"{serial}: emulated heating {state}")


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
    for col in (
        "serial",
        "model",
        "profile",
        "ABI",
        "GPU delegate",
        "pid",
        "faults",
        "adb servers",
    ):
        table.add_column(col)
    for r in records:
        table.add_row(
            r.serial,
            r.model,
            r.profile,
            r.abi or "harness-virtual",
            r.delegate or "?",
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
                        "faults": list(p.faults),
                        "gpu_delegate": p.delegate,
                        "gpu_delegate_why": p.delegate_why,
                        "mediump_bits": p.mediump_bits,
                        "mediump_source": p.mediump_source,
                    }
                    for p in loaded
                ],
                indent=2,
            )
        )
        return
    table = Table(title="Device profiles", title_justify="left")
    columns = ("profile", "model", "description", "GPU backends", "mediump", "GPU delegate")
    for col in (*columns, "default faults"):
        table.add_column(col)
    for p in loaded:
        table.add_row(
            p.name,
            p.model,
            p.description,
            ",".join(p.gpu_backends),
            p.mediump_label(),
            f"{p.delegate} ({p.delegate_why})",
            ",".join(p.faults) or "-",
        )
    console().print(table)
