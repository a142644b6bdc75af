"""``harness assets list|check|pin|fetch``: the benchmark binaries and APKs per ABI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from harness import assets
from harness.devices.options import JsonOption
from harness.errors import AssetError
from harness.ui import console

app = typer.Typer(
    help="Benchmark binaries and APKs per ABI: list, verify pins, pin, fetch.",
    no_args_is_help=True,
)

AbiArgument = Annotated[
    str, typer.Argument(metavar="ABI", help="arm64-v8a, armeabi-v7a, x86_64 or harness-virtual.")
]
ApkOption = Annotated[
    bool, typer.Option("--apk", help="The benchmark APK (--runner apk) instead of the binary.")
]

_STATE_STYLE = {"ok": "green", "missing": "dim", "unpinned": "yellow", "bad checksum": "red"}


def _kind(apk: bool) -> assets.AssetKind:
    return assets.AssetKind.APK if apk else assets.AssetKind.BINARY


def _table(statuses: list[assets.AssetStatus], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("ABI", "kind", "state", "file", "sha256 (pinned)", "from"):
        table.add_column(col)
    for s in statuses:
        a = s.asset
        style = _STATE_STYLE.get(s.state, "")
        table.add_row(
            a.abi,
            a.kind.value,
            f"[{style}]{s.state}[/]" if style else s.state,
            a.file,
            a.sha256[:12] + "..." if a.sha256 else "-",
            "url" if a.url else ("repository" if a.abi == "harness-virtual" else "manual"),
        )
    return table


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List the binaries and APKs of every ABI with their state (ok, missing, unpinned, ...)."""
    statuses = assets.check_all()
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in statuses], indent=2))
        return
    console().print(_table(statuses, f"Assets ({assets.manifest_path()})"))


@app.command()
def check(as_json: JsonOption = False) -> None:
    """Verify every present file against its sha256 pin (exit 9 if one is unpinned or differs)."""
    statuses = assets.check_all()
    present = [s for s in statuses if s.present]
    bad = [s for s in present if not s.ok]
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in statuses], indent=2))
    else:
        console().print(_table(statuses, "Asset check"))
    if bad:
        first = bad[0]
        why = first.problem or "not pinned (run: harness assets pin " + first.asset.ref + ")"
        raise AssetError(
            f"{len(bad)} of {len(present)} present assets unusable: {first.asset.path}: {why}"
        )


@app.command()
def pin(
    abi: AbiArgument,
    apk: ApkOption = False,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Copy this file into place first (default: the file already there)."
        ),
    ] = None,
) -> None:
    """Record the sha256 of a binary (or APK) you placed, so bench will use it."""
    kind = _kind(apk)
    sha = assets.pin(abi, kind, file)
    asset = assets.find(abi, kind)
    console().print(f"pinned {asset.path} ({kind.label}, {abi}): sha256 {sha}", soft_wrap=True)


@app.command()
def fetch(
    abi: AbiArgument,
    apk: ApkOption = False,
    url: Annotated[
        str | None, typer.Option("--url", help="Download from here instead of the manifest's url.")
    ] = None,
    pin_new: Annotated[
        bool,
        typer.Option(
            "--pin", help="If the manifest has no pin yet, record this download's sha256."
        ),
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Network timeout in seconds.")] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Download the official prebuilt binary (or APK); kept only if it matches the pin."""
    kind = _kind(apk)
    with Progress(
        TextColumn(f"{abi} {kind.label}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console(),
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("fetch", total=None)

        def on_progress(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        got = assets.fetch(
            abi, kind, url=url, pin_new=pin_new, timeout=timeout, on_progress=on_progress
        )
    pinned = bool(got.asset.sha256) or got.pinned_now
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "abi": abi,
                    "kind": kind.value,
                    "file": str(got.asset.path),
                    "sha256": got.sha256,
                    "bytes": got.size,
                    "pinned": pinned,
                    "pinned_now": got.pinned_now,
                },
                indent=2,
            )
        )
        return
    if got.asset.sha256:
        state = "matches the pin"
    elif got.pinned_now:
        state = "pinned now (first use)"
    else:
        state = f"NOT pinned: bench refuses it until you run: harness assets pin {got.asset.ref}"
    console().print(
        f"fetched {got.asset.path} ({got.size / 1e6:.1f} MB, sha256 {got.sha256}): {state}",
        soft_wrap=True,
    )
