"""``harness bench``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from harness.cli_options import (
    ActivationOption,
    FgChannelOption,
    FullResOption,
    InputRangeOption,
    MaskClassOption,
    MeanOption,
    OutputOption,
    PriorOption,
    ResizeOption,
    StdOption,
)
from harness.devices.options import AdbOption, DeviceOption, JsonOption
from harness.errors import PartialRun
from harness.store import CellRecord
from harness.ui import console, err_console


def print_warnings(warnings: list[str] | tuple[str, ...]) -> None:
    from rich.markup import escape

    for warning in warnings:
        console().print(f"[yellow]warning:[/] {escape(warning)}")


def _cell_row(cell: CellRecord) -> tuple[str, ...]:
    lat = cell.latency.get("avg_ms")
    acc = cell.accuracy.get("vs_reference") or {}
    gt = cell.accuracy.get("vs_gt") or {}
    sig = cell.accuracy.get("signature", "")
    status = (
        "[green]ok[/]"
        if cell.ok and sig == "ok"
        else (f"[yellow]{sig}[/]" if cell.ok else f"[red]failed[/]: {cell.reason[:60]}")
    )
    return (
        cell.serial,
        cell.variant_id,
        cell.delegate,
        f"{lat:.3f}" if lat is not None else "-",
        f"{cell.latency.get('spread_pct', 0):.1f}%" if lat is not None else "-",
        f"{acc['iou']:.4f}" if "iou" in acc else "-",
        f"{gt['iou']:.4f}" if "iou" in gt else "-",
        cell.delegation.get("verdict", "-") or "-",
        status,
    )


def _table(rows: list[tuple[str, ...]], pending: int, title: str) -> Table:
    table = Table(
        title=title + (f" — {pending} cells to go" if pending else ""), title_justify="left"
    )
    for col, just in (
        ("device", "left"),
        ("variant", "left"),
        ("delegate", "left"),
        ("avg ms", "right"),
        ("spread", "right"),
        ("IoU vs desktop", "right"),
        ("IoU vs GT", "right"),
        ("delegation", "left"),
        ("result", "left"),
    ):
        table.add_column(col, justify=just)
    for row in rows:
        table.add_row(*row)
    return table


class _LiveTable:
    """The cells as they finish, in a live table (nothing shown with ``show`` False)."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.rows: list[tuple[str, ...]] = []
        self.pending = 0
        self.title = "bench"
        self.live: Live | None = None

    def start(self, run_id: str, plan: list) -> None:
        self.pending = len(plan)
        self.title = f"run {run_id}"
        if self.show:
            self.live = Live(
                _table(self.rows, self.pending, self.title),
                console=console(),
                refresh_per_second=4,
                transient=False,
            )
            self.live.start()

    def add(self, cell: CellRecord) -> None:
        self.rows.append(_cell_row(cell))
        self.pending -= 1
        if self.live is not None:
            self.live.update(_table(self.rows, self.pending, self.title))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def _warn(text: str) -> None:  # phone state: a warning, never a refusal
    err_console().print(f"[yellow]warning:[/] {escape(text)}", highlight=False)


def _print_outcome(outcome, store: str, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run": outcome.run_id,
                    "status": outcome.status,
                    "store": store,
                    "bytes_pushed": outcome.bytes_sent,
                    "bytes_cached": outcome.bytes_skipped,
                    "wall_seconds": outcome.wall_seconds,
                    "device_seconds": outcome.device_seconds,
                    "warnings": outcome.warnings,
                    "cells": [
                        {
                            "device": c.serial,
                            "variant": c.variant_id,
                            "delegate": c.delegate,
                            "status": c.status,
                            "reason": c.reason,
                            "latency": c.latency,
                            "accuracy": c.accuracy,
                            "delegation": c.delegation,
                        }
                        for c in outcome.cells
                    ],
                },
                indent=2,
                default=str,
            )
        )
        return
    console().print(
        f"run [bold]{outcome.run_id}[/]: {len(outcome.cells)} cells measured"
        + (f", {outcome.skipped_cells} already stored" if outcome.skipped_cells else "")
        + f", {len(outcome.failed)} failed; pushed {outcome.bytes_sent / 1e6:.1f} MB "
        f"({outcome.bytes_skipped / 1e6:.1f} MB already on the phones); store {store}"
    )
    print_warnings(outcome.warnings)


def bench(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model folder (models/NAME) or a .tflite file.")
    ],
    device: DeviceOption = None,
    adb: AdbOption = None,
    variants: Annotated[
        str | None,
        typer.Option("--variants", help="Variant ids or globs, comma-separated (default: all)."),
    ] = None,
    delegates: Annotated[
        str | None,
        typer.Option(
            "--delegates",
            help="cpu,cpu1,gpu,gpu-fp32,gpu-cl,gpu-gl,nnapi (default: cpu,gpu,gpu-fp32).",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads (--num_threads).")
    ] = None,
    runs: Annotated[int, typer.Option("--runs", help="Timed runs per invocation (exact).")] = 20,
    warmup: Annotated[
        int, typer.Option("--warmup", help="Warmup runs per invocation (exact).")
    ] = 2,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Invocations per cell (spread between invocations).")
    ] = 2,
    eval_set: Annotated[
        str, typer.Option("--eval-set", help="Folder with images/ and masks/, or 'synthetic'.")
    ] = "synthetic",
    images: Annotated[int, typer.Option("--images", help="Eval images for the accuracy pass.")] = 8,
    store: Annotated[
        str, typer.Option("--store", help="SQLite results store.")
    ] = "results/harness.db",
    resume: Annotated[
        str | None, typer.Option("--resume", help="Finish an interrupted run (id or tag).")
    ] = None,
    cooldown: Annotated[
        float | None,
        typer.Option(
            "--cooldown", help="Seconds between cells (default 3 on phones, 0 on virtual ones)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds one benchmark_model invocation may take.")
    ] = 120.0,
    wait_lock: Annotated[
        float,
        typer.Option(
            "--wait", help="Seconds to wait for a device another harness run is using (0: refuse)."
        ),
    ] = 0.0,
    reconnect_wait: Annotated[
        float,
        typer.Option(
            "--reconnect-wait",
            help="Seconds a phone that dropped off may take to come back before its remaining "
            "cells fail (the run then exits 10; --resume finishes it).",
        ),
    ] = 60.0,
    runner: Annotated[
        str,
        typer.Option(
            "--runner",
            help="Latency pass: shell (benchmark_model via adb shell) or apk (the benchmark app "
            "in the foreground, timings from logcat). The accuracy pass always uses the binary.",
        ),
    ] = "shell",
    require_cool: Annotated[
        float | None,
        typer.Option(
            "--require-cool",
            metavar="CELSIUS",
            help="Before each cell, wait until the phone's hottest thermal zone is below this.",
        ),
    ] = None,
    cool_wait: Annotated[
        float,
        typer.Option(
            "--cool-wait",
            help="Seconds --require-cool may wait per cell; then that cell fails (resume later).",
        ),
    ] = 600.0,
    mean: MeanOption = None,
    std: StdOption = None,
    input_range: InputRangeOption = None,
    output: OutputOption = None,
    fg_channel: FgChannelOption = None,
    activation: ActivationOption = None,
    prior: PriorOption = None,
    resize: ResizeOption = None,
    mask_class: MaskClassOption = None,
    full_res_iou: FullResOption = False,
    as_json: JsonOption = False,
) -> None:
    """Benchmark variants on phones: latency per delegate and accuracy vs desktop references."""
    flags = dict(locals())  # the parameters: IoOptions.from_flags picks the I/O ones
    from harness.bench.run import BenchOptions, run_bench
    from harness.convert.iospec import IoOptions

    opts = BenchOptions(
        model=model,
        devices=tuple(device or ()),
        adb=tuple(adb or ()),
        variants=variants,
        delegates=delegates,
        threads=threads,
        runs=runs,
        warmup=warmup,
        repeats=repeats,
        eval_set=eval_set,
        images=images,
        store=store,
        cooldown=cooldown,
        timeout=timeout,
        wait_lock=wait_lock,
        reconnect_wait=reconnect_wait,
        runner=runner,
        require_cool=require_cool,
        cool_wait=cool_wait,
        io=IoOptions.from_flags(flags).to_dict(),
    )
    progress = _LiveTable(show=not as_json)
    try:
        outcome = run_bench(
            opts,
            resume=resume,
            on_start=progress.start,
            on_cell=progress.add,
            on_warning=_warn,
        )
    finally:
        progress.stop()
    _print_outcome(outcome, store, as_json)
    if outcome.failed:
        raise PartialRun(
            f"{len(outcome.failed)} of {len(outcome.cells)} cells failed in run "
            f"{outcome.run_id}; finished cells are stored (harness report)"
        )
