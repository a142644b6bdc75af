"""CLI: ``harness convert`` and ``harness inspect``. Thin: parse, call the library, render.

No TensorFlow at import time: the library modules that need it load it inside functions.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from harness.ui import console

__all__ = ["convert", "import_model", "inspect"]


def convert(
    model_dir: Path = typer.Argument(
        ..., help="Model folder (models/NAME) with model.keras, or a float .tflite file."
    ),
    heads: str = typer.Option(
        None,
        "--heads",
        help="Comma list or 'all' (default: softmax,sigmoid,sigsoftmax,logits,argmax; for a "
        ".tflite softmax,sigmoid,logits,argmax).",
    ),
    precisions: str = typer.Option(
        None,
        "--precisions",
        help="Comma list or 'all' (default: fp32,fp16,int8-dynamic,int8,qat; a .tflite: fp32).",
    ),
    qat_heads: str = typer.Option(
        "softmax",
        "--qat-heads",
        help="Heads built at qat precision ('all' = every --heads entry).",
    ),
    qat_epochs: int = typer.Option(4, "--qat-epochs", min=1, help="QAT fine-tuning epochs."),
    qat_samples: int = typer.Option(256, "--qat-samples", min=1, help="QAT training samples."),
    representative: int = typer.Option(
        100, "--representative-samples", min=1, help="Calibration samples for int8/qat."
    ),
    eval_samples: int = typer.Option(
        0, "--eval-samples", min=0, help="Validation samples for accuracy (0 = all)."
    ),
    no_accuracy: bool = typer.Option(False, "--no-accuracy", help="Skip the accuracy pass."),
    out: Path = typer.Option(
        None, "--out", help="A .tflite's model folder (default: beside the file, named by it)."
    ),
    mean: str = typer.Option(None, "--mean", help="A .tflite's input normalization mean."),
    std: str = typer.Option(None, "--std", help="A .tflite's input normalization std."),
    input_range: str = typer.Option(
        None, "--input-range", help="A .tflite's input range instead of --mean/--std."
    ),
    output: str = typer.Option(None, "--output", help="A .tflite's mask output: name or index."),
    fg_channel: int = typer.Option(
        None, "--fg-channel", help="A .tflite's foreground channel (2-class output)."
    ),
    explain_quantization: bool = typer.Option(
        False,
        "--explain-quantization",
        help="Per-layer int8 error of each head and the layers worth keeping in float.",
    ),
    float_layers: str = typer.Option(
        None,
        "--float-layers",
        help="Build <head>-int8-selective with these layers in float: comma list or 'auto'.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Convert a trained model (or heads of a float .tflite) to TFLite variants + variants.json."""
    flags = dict(locals())  # the parameters: IoOptions.from_flags picks the I/O ones
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.convert.variants import parse_heads, parse_precisions

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    if model_dir.suffix.lower() == ".tflite" or model_dir.is_file():
        from harness.convert.from_tflite import convert_tflite
        from harness.convert.iospec import IoOptions
        from harness.convert.surgery import SURGERY_HEADS
        from harness.convert.variants import Precision
        from harness.errors import UsageError

        if precisions and parse_precisions(precisions) != (Precision.FP32,):
            raise UsageError("a .tflite gives fp32 heads only: --precisions fp32")
        io = IoOptions.from_flags(flags)
        with Progress(*columns, console=console(), transient=json_out) as bar:
            task = bar.add_task("reading model", total=None)
            manifest = convert_tflite(
                model_dir,
                parse_heads(heads) if heads else SURGERY_HEADS,
                out,
                io,
                progress=lambda m, d, t: bar.update(task, description=m, completed=d, total=t),
            )
        folder = out or model_dir.with_suffix("")
    else:
        from harness.convert.pipeline import ConvertOptions, convert_model

        head_list = parse_heads(heads or "softmax,sigmoid,sigsoftmax,logits,argmax")
        options = ConvertOptions(
            heads=head_list,
            precisions=parse_precisions(precisions or "fp32,fp16,int8-dynamic,int8,qat"),
            qat_heads=None if qat_heads.strip().lower() == "all" else parse_heads(qat_heads),
            qat_epochs=qat_epochs,
            qat_samples=qat_samples,
            representative_samples=representative,
            eval_samples=eval_samples or None,
            accuracy=not no_accuracy,
            explain_quantization=explain_quantization,
            float_layers=_parse_float_layers(float_layers),
        )
        with Progress(*columns, console=console(), transient=json_out) as bar:
            task = bar.add_task("loading model", total=None)

            def on_progress(message: str, done: int, total: int) -> None:
                bar.update(task, description=message, completed=done, total=total)

            manifest = convert_model(model_dir, options, progress=on_progress)
        folder = model_dir
    if json_out:
        console().print_json(json.dumps(manifest.to_dict()))
        return
    _render_manifest(manifest, folder)
    if explain_quantization:
        for r in manifest.variants:
            if r.quantization:
                render_quantization(r.quantization)


def _parse_float_layers(text: str | None) -> tuple[str, ...]:
    from harness.errors import UsageError

    if text is None:
        return ()
    if text.strip().lower() == "auto":
        return ("auto",)
    # node names contain ';' and '/', never ','
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise UsageError("--float-layers: give layer names (comma list) or 'auto'")
    return names


def render_quantization(q: dict) -> None:  # type: ignore[type-arg]
    """The per-layer table of one int8 variant's quantization report (manifest dict)."""
    from rich.table import Table

    base = q.get("iou_vs_float")
    table = Table(
        title=f"{q['variant']}: per-layer int8 error (IoU vs float {_fmt(base, '.4f')}, "
        f"{q.get('representative_samples')} representative / {q.get('eval_samples')} eval samples)"
    )
    for col in ("#", "layer", "op", "rmse/scale", "max |err|", "IoU if float", "+downstream"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    for i, la in enumerate(q.get("layers", [])[:12], start=1):
        name = la["name"] if len(la["name"]) <= 60 else la["name"][:57] + "..."
        down = la.get("iou_if_float_downstream")
        _row(
            table,
            str(i),
            name,
            la["op"],
            _fmt(la.get("rmse_over_scale"), ".3g"),
            _fmt(la.get("max_abs_error"), ".3g"),
            _fmt(la.get("iou_if_float"), ".4f"),
            "-" if down is None else f"{down:.4f} ({la.get('downstream_ops')} ops)",
        )
    console().print(table)
    suggested = q.get("suggested_float_layers") or []
    if suggested:
        size, int8 = q.get("suggested_size") or 0, q.get("size") or 0
        console().print(
            f"suggested --float-layers ({len(suggested)} layers): IoU vs float "
            f"{_fmt(q.get('suggested_iou_vs_float'), '.4f')}, size {size / 1024:.1f} KiB "
            f"(int8 {int8 / 1024:.1f} KiB, +{(size - int8) / 1024:.1f} KiB)",
            markup=False,
        )
        console().print(",".join(suggested), markup=False, soft_wrap=True)
    for note in q.get("notes", []):
        console().print(f"note: {note}", markup=False)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _row(table, *cells: str) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape

    table.add_row(*(escape(c) for c in cells))


def _render_manifest(manifest, model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title=f"{manifest.model}: {len(manifest.variants)} variants in {model_dir}")
    for col in ("variant", "size", "output", "ops", "GPU", "IoU vs float", "max |dp|", "IoU vs GT"):
        table.add_column(col, justify="right" if col in ("size", "ops") else "left")
    for r in manifest.variants:
        acc = r.accuracy or {}
        vf, gt = acc.get("vs_float", {}), acc.get("vs_ground_truth", {})
        out = f"{r.output.dtype}{list(r.output.shape)}"
        _row(
            table,
            r.id,
            f"{r.size / 1024:.1f} KiB",
            out,
            str(len(r.ops)),
            r.gpu.summary(),
            _fmt(vf.get("mask_iou"), ".4f"),
            _fmt(
                vf.get("fg_prob_max_abs_error", acc.get("vs_logits_head", {}).get("max_abs_error")),
                ".2e",
            ),
            _fmt(gt.get("mask_iou"), ".4f"),
        )
    console().print(table)
    if manifest.float_model:
        gt = manifest.float_model.get("vs_ground_truth", {})
        console().print(f"float Keras model: IoU vs ground truth {_fmt(gt.get('mask_iou'), '.4f')}")
    checks = manifest.source.get("checks") or {}
    for name, value in checks.items():
        console().print(f"check {name.replace('_', ' ')}: {value:.2e}")
    for warning in manifest.source.get("warnings") or []:
        console().print(f"[yellow]warning:[/] {warning}")


def inspect(
    tflite: Path = typer.Argument(..., help="Any .tflite file."),
    mean: str = typer.Option(None, "--mean", help="Input normalization mean, e.g. 127.5"),
    std: str = typer.Option(None, "--std", help="Input normalization std, e.g. 127.5"),
    input_range: str = typer.Option(
        None, "--input-range", help="Named input range instead of --mean/--std: 0,1 | -1,1 | 0,255."
    ),
    fg_channel: int = typer.Option(None, "--fg-channel", help="Foreground channel index."),
    activation: str = typer.Option(
        None,
        "--activation",
        help="Activation already in the model: none (logits), sigmoid, softmax, argmax.",
    ),
    output: str = typer.Option(
        None, "--output", help="The mask output: name or index (default: first per-pixel map)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show I/O, semantics, ops, size and the GPU-delegate verdict of a .tflite."""
    flags = dict(locals())  # the parameters: IoOptions.from_flags picks the I/O ones
    from harness.convert.inspection import inspect_tflite
    from harness.convert.iospec import IoOptions

    options = IoOptions.from_flags(flags)
    result = inspect_tflite(tflite, options)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _render_inspection(result)


def _render_inspection(r) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape
    from rich.table import Table

    out = console()
    label = f" (variant {r.variant_id})" if r.variant_id else ""
    out.print(
        f"[bold]{escape(str(r.path))}[/]{label}: {r.model.size:,} bytes, sha256 {r.model.sha256[:16]}…,"
        f" {len(r.model.ops)} ops, specs {r.source}"
    )
    io = Table(title="I/O")
    for col in ("", "name", "shape", "dtype", "quantization", "meaning"):
        io.add_column(col)
    for t in r.model.inputs:
        q = t.quantization
        norm = r.input.normalization
        meaning = (
            f"(pixel - {list(norm.mean)}) / {list(norm.std)} [{r.normalization_source}]"
            if norm
            else "UNKNOWN normalization: raw pixels 0..255 fed (pass --mean/--std or --input-range)"
        )
        _row(
            io,
            "input",
            t.name,
            str(list(t.shape)),
            t.dtype,
            f"scale {q.scale:.6g}, zp {q.zero_point}" if q else "-",
            meaning,
        )
    for i, t in enumerate(r.model.outputs):
        q = t.quantization
        meaning = r.output.describe() if t.index == r.output.index else "(not the mask: ignored)"
        _row(
            io,
            f"output {i}",
            t.name,
            str(list(t.shape)),
            t.dtype,
            f"scale {q.scale:.6g}, zp {q.zero_point}" if q else "-",
            meaning,
        )
    out.print(io)
    ops = Table(title="ops")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for name, count in r.model.op_counts().items():
        _row(ops, name, str(count))
    out.print(ops)
    style = {"full": "green", "partial": "yellow", "none": "red"}.get(r.gpu.delegation, "white")
    out.print(f"GPU delegate: [{style}]{escape(r.gpu.summary())}[/]")
    if r.gpu.issues:
        issues = Table()
        for col in ("#", "op", "status", "reason"):
            issues.add_column(col)
        for v in r.gpu.issues:
            _row(issues, str(v.index), v.op, str(v.status), v.reason)
        out.print(issues)
    for note in r.gpu.notes:
        out.print(f"note: {escape(note)}")
    if r.quantization:
        render_quantization(r.quantization)
    for warning in r.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")


def import_model(
    source: Path = typer.Argument(..., help="A Keras model: .h5, .keras or a SavedModel folder."),
    out: Path = typer.Option(..., "--out", help="The model folder to write (models/NAME)."),
    mean: str = typer.Option(None, "--mean", help="Input normalization mean, e.g. 127.5"),
    std: str = typer.Option(None, "--std", help="Input normalization std, e.g. 127.5"),
    input_range: str = typer.Option(
        None, "--input-range", help="Named input range instead of --mean/--std: 0,1 | -1,1 | 0,255."
    ),
    fg_channel: int = typer.Option(
        None, "--fg-channel", help="Foreground channel of a 2-channel output (default 1)."
    ),
    name: str = typer.Option(None, "--name", help="Model name (default: the folder's name)."),
    data: str = typer.Option(
        None,
        "--data",
        help="Calibration/eval data for convert: a folder with images/ and masks/, or 'synthetic'.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print train.json as JSON."),
) -> None:
    """Make a model folder from a Keras network trained elsewhere (final activation stripped)."""
    flags = dict(locals())  # the parameters: IoOptions.from_flags picks the I/O ones
    from rich.markup import escape

    from harness.convert.importer import import_keras
    from harness.convert.iospec import IoOptions

    io = IoOptions.from_flags(flags)
    with console().status(f"importing {source}"):
        result = import_keras(source, out, io, name=name, data=data)
    if json_out:
        typer.echo(json.dumps(result.train_json, indent=2))
        return
    info = result.train_json
    inp, imp = info["input"], info["imported"]
    console().print(
        f"[bold]{escape(str(result.folder))}[/]: input {inp['height']}x{inp['width']}x"
        f"{inp['channels']}, stripped {imp['stripped_activation']} -> 2-channel logits "
        f"(foreground {info['output']['foreground_channel']}); next: harness convert "
        f"{escape(str(result.folder))}"
    )
    for warning in result.warnings:
        console().print(f"[yellow]warning:[/] {escape(warning)}")
