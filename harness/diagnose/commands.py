"""``harness diagnose``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from harness.bench.commands import print_warnings
from harness.cli_options import (
    ActivationOption,
    FgChannelOption,
    InputRangeOption,
    MaskClassOption,
    MeanOption,
    OutputOption,
    PriorOption,
    ResizeOption,
    StdOption,
)
from harness.devices.options import AdbOption, DeviceOption, JsonOption
from harness.diagnose.localize import DEFAULT_TOLERANCE
from harness.diagnose.run import DEFAULT_DELEGATES
from harness.ui import console


def diagnose(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model folder (models/NAME) or a .tflite file.")
    ],
    device: DeviceOption = None,
    adb: AdbOption = None,
    heads: Annotated[
        str | None,
        typer.Option(
            "--heads",
            help="Heads to compare, e.g. softmax,sigmoid,logits (default: those the model "
            "folder has; missing ones are converted from its model.keras).",
        ),
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", help="Variant precision to diagnose.")
    ] = "fp32",
    delegates: Annotated[
        str, typer.Option("--delegates", help="Delegate configs, comma-separated.")
    ] = DEFAULT_DELEGATES,
    eval_set: Annotated[
        str, typer.Option("--eval-set", help="Folder with images/ and masks/, or 'synthetic'.")
    ] = "synthetic",
    images: Annotated[int, typer.Option("--images", help="Eval images per cell.")] = 8,
    probe_images: Annotated[
        int, typer.Option("--probe-images", help="Worst images each localization probes.")
    ] = 2,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="A tensor diverges past this max error / max |desktop value| (or on NaN/Inf).",
        ),
    ] = DEFAULT_TOLERANCE,
    runs: Annotated[int, typer.Option("--runs", help="Timed runs per invocation.")] = 10,
    repeats: Annotated[int, typer.Option("--repeats", help="Invocations per cell.")] = 2,
    store: Annotated[
        str, typer.Option("--store", help="SQLite results store.")
    ] = "results/harness.db",
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds one benchmark_model invocation may take.")
    ] = 120.0,
    mean: MeanOption = None,
    std: StdOption = None,
    input_range: InputRangeOption = None,
    output: OutputOption = None,
    fg_channel: FgChannelOption = None,
    activation: ActivationOption = None,
    prior: PriorOption = None,
    resize: ResizeOption = None,
    mask_class: MaskClassOption = None,
    as_json: JsonOption = False,
) -> None:
    """Diagnose a model on phones: failing delegate configs, the op that breaks, what to ship."""
    flags = dict(locals())  # the parameters: IoOptions.from_flags picks the I/O ones
    from harness.convert.iospec import IoOptions
    from harness.diagnose.render import render
    from harness.diagnose.run import DiagnoseOptions, run_diagnose

    opts = DiagnoseOptions(
        model=model,
        devices=tuple(device or ()),
        adb=tuple(adb or ()),
        heads=heads,
        precision=precision,
        delegates=delegates,
        eval_set=eval_set,
        images=images,
        store=store,
        runs=runs,
        repeats=repeats,
        probe_images=probe_images,
        tolerance=tolerance,
        timeout=timeout,
        io=IoOptions.from_flags(flags).to_dict(),
    )
    if as_json:
        typer.echo(json.dumps(run_diagnose(opts), indent=2))
        return
    with console().status("diagnosing") as status:
        diagnosis = run_diagnose(
            opts,
            progress=lambda msg: status.update(msg),
            on_cell=lambda c: status.update(f"matrix: {c.variant_id} on {c.delegate} measured"),
        )
    render(diagnosis, console())
    print_warnings(diagnosis.get("warnings") or [])
