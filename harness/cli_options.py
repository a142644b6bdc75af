"""Command-line options that several commands share, declared once.

The I/O overrides (``--mean`` ... ``--full-res-iou``) are :class:`harness.convert.iospec.IoOptions`
fields; a command passes its parameters to ``IoOptions.from_flags(locals())``.
"""

from __future__ import annotations

from typing import Annotated

import typer

MeanOption = Annotated[
    str | None,
    typer.Option("--mean", help="Input normalization mean, e.g. 127.5 or 123.7,116.3,103.5."),
]
StdOption = Annotated[
    str | None, typer.Option("--std", help="Input normalization std, e.g. 127.5.")
]
InputRangeOption = Annotated[
    str | None,
    typer.Option(
        "--input-range", help="Named input range instead of --mean/--std: 0,1 | -1,1 | 0,255."
    ),
]
OutputOption = Annotated[
    str | None,
    typer.Option("--output", help="The mask output: name or index (default: first per-pixel map)."),
]
FgChannelOption = Annotated[
    int | None, typer.Option("--fg-channel", help="Foreground channel of the mask output.")
]
ActivationOption = Annotated[
    str | None,
    typer.Option(
        "--activation", help="Activation in the model: none (logits), sigmoid, softmax, argmax."
    ),
]
PriorOption = Annotated[
    str | None,
    typer.Option(
        "--prior", help="4-channel inputs: prior-mask channel from gt | empty | previous."
    ),
]


ResizeOption = Annotated[
    str | None,
    typer.Option("--resize", help="Eval photos to the model input: stretch (default) | letterbox."),
]
MaskClassOption = Annotated[
    int | None,
    typer.Option(
        "--mask-class", help="Class-index masks: the foreground class (255 = ignore, VOC style)."
    ),
]

FullResOption = Annotated[
    bool,
    typer.Option(
        "--full-res-iou", help="Also score IoU vs ground truth at each photo's own resolution."
    ),
]
