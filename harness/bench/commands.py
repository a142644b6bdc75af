"""``harness bench``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from harness.cell import Cell, Verdict
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
from harness.ui import console, err_console


def print_warnings(warnings: list[str] | tuple[str, ...]) -> None:
    from rich.markup import escape

    for warning in warnings:
        console().print(f"[yellow]warning:[/] {escape(warning)}")


def _cell_row(cell: Cell) -> tuple[str, ...]:
    """One row of the live table; the last column is the judge's verdict (harness.cell)."""
    lat, outcome = cell.latency, cell.outcome
    iou, gt = cell.accuracy.reference.iou, cell.accuracy.gt.iou
    if not outcome.measured:
        status = f"[red]failed[/]: {cell.reason[:60]}"
    elif outcome.verdict is Verdict.CORRECT:
        status = "[green]ok[/]"
    else:
        status = f"[yellow]{outcome.verdict.value}[/]"
    return (
        cell.serial,
        cell.variant_id,
        cell.delegate,
        f"{lat.avg_ms:.3f}" if lat.avg_ms is not None else "-",
        f"{lat.spread_pct or 0:.1f}%" if lat.avg_ms is not None else "-",
        f"±{lat.ci95_pct:.1f}%" if lat.ci95_pct is not None else "-",
        f"{iou:.4f}" if iou is not None else "-",
        f"{gt:.4f}" if gt is not None else "-",
        cell.delegation.verdict or "-",
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
        ("CI95", "right"),
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

    def add(self, cell: Cell) -> None:
        self.rows.append(_cell_row(cell))
        self.pending -= 1
        if self.live is not None:
            self.live.update(_table(self.rows, self.pending, self.title))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            if not console().is_terminal:  # rich ends a Live in a log or pipe without a newline
                console().line()


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
                            "server": c.server,
                            "variant": c.variant_id,
                            "delegate": c.delegate,
                            "status": c.status.value,
                            "outcome": c.outcome.verdict.value,
                            "reason": c.reason,
                            "latency": c.latency.to_json(),
                            "accuracy": c.accuracy.to_json(),
                            "delegation": c.delegation.to_json(),
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
    target_ci: Annotated[
        float | None,
        typer.Option(
            "--target-ci",
            metavar="PCT",
            help="Add invocations (after --repeats) until the 95% confidence interval of the "
            "mean latency (t over invocation means) is within ±PCT % of it, or --max-time.",
        ),
    ] = None,
    max_time: Annotated[
        float,
        typer.Option(
            "--max-time",
            metavar="SECONDS",
            help="With --target-ci: benchmark_model seconds a cell's latency pass may use.",
        ),
    ] = 300.0,
    profile_ops: Annotated[
        bool,
        typer.Option(
            "--profile-ops",
            help="One more invocation per cell with op profiling: time per op and node type, "
            "CPU-fallback ops (a GPU delegate is one row), stored and reported.",
        ),
    ] = False,
    gpu_init: Annotated[
        bool,
        typer.Option(
            "--gpu-init",
            help="GPU cells: two more one-run invocations measuring init cold (kernel cache "
            "emptied) and warm (kernels serialized by the cold one).",
        ),
    ] = False,
    sustain: Annotated[
        str | None,
        typer.Option(
            "--sustain",
            metavar="DURATION",
            help="After each cell's latency pass, back-to-back inference for DURATION (180, 90s, "
            "3m, 1h) with thermal zones and CPU/GPU frequencies sampled; throttling detected.",
        ),
    ] = None,
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
    from harness.bench.sustain import parse_duration
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
        target_ci=target_ci,
        max_time=max_time,
        profile_ops=profile_ops,
        gpu_init=gpu_init,
        sustain=parse_duration(sustain),
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
