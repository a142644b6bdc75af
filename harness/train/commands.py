"""``harness train``: train a segmentation net into a model folder.

Thin: parse options, build a :class:`~harness.train.config.TrainConfig`, call
:func:`harness.train.trainer.run`. TensorFlow is imported only when training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from harness.errors import UsageError
from harness.train import augment as aug
from harness.train.config import DEFAULTS, TrainConfig, merge_for_resume
from harness.ui import console


def _list_archs() -> None:
    from rich.table import Table

    from harness.train import nets

    table = Table(title="Architectures (harness train --arch NAME)", title_justify="left")
    for col in ("name", "params @128, 3ch", "boundary head", "input sizes", "description"):
        table.add_column(col, overflow="fold")
    for arch in nets.ARCHS.values():
        params = nets.count_params(nets.build(arch.name, 128).inference)
        sizes = f"{nets.MIN_INPUT_SIZE}-{nets.MAX_INPUT_SIZE}, multiple of {arch.stride}"
        table.add_row(
            arch.name,
            f"{params:,}",
            "yes (training only)" if arch.boundary_head else "no",
            sizes,
            arch.summary,
        )
    console().print(table)


def _resume_config(out: Path, given: dict[str, Any]) -> TrainConfig:
    from harness.train.model_folder import ModelFolder, read_json

    folder = ModelFolder(out)
    if not folder.train_json.is_file():
        raise UsageError(f"nothing to resume in {out} (no train.json; check --out)")
    stored = read_json(folder.train_json).get("config")
    if not isinstance(stored, dict):
        raise UsageError(f"{folder.train_json} has no stored config; it cannot be resumed")
    return merge_for_resume(TrainConfig.from_json(stored), {**given, "out": str(out)})


def train(
    data: str | None = typer.Option(
        None,
        "--data",
        help="A dataset folder (images/ + masks/, EG1800, PFCN+ or alpha-matte layout; "
        "see --layout) or 'synthetic'. (default: synthetic)",
    ),
    layout: str | None = typer.Option(
        None,
        "--layout",
        help="Dataset layout of --data: folders, eg1800, alpha or pfcn. (default: detected)",
    ),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Keep the decoded dataset (at --input-size) in DIR as .npz and reuse it while "
        "the files are unchanged: later runs and resumes read and hash the files but skip "
        "decoding.",
    ),
    arch: str | None = typer.Option(
        None, "--arch", help=f"Architecture (see --list-archs). (default: {DEFAULTS['arch']})"
    ),
    list_archs: bool = typer.Option(False, "--list-archs", help="List architectures and exit."),
    width: float | None = typer.Option(None, "--width", help="Width multiplier. (default: 1.0)"),
    channels: int | None = typer.Option(
        None, "--channels", help="3 (RGB) or 4 (RGB + prior mask, for video). (default: 3)"
    ),
    input_size: int | None = typer.Option(
        None,
        "--input-size",
        help="Square input size, 128-512, a multiple of the arch's "
        f"stride. (default: {DEFAULTS['input_size']})",
    ),
    epochs: int | None = typer.Option(None, "--epochs", help=f"(default: {DEFAULTS['epochs']})"),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help=f"(default: {DEFAULTS['batch_size']})"
    ),
    lr: float | None = typer.Option(
        None, "--lr", help=f"Peak learning rate (Adam, cosine decay). (default: {DEFAULTS['lr']})"
    ),
    val_ratio: float | None = typer.Option(
        None,
        "--val-ratio",
        help="Share of samples held out for validation (deterministic "
        f"from --seed and file names). (default: {DEFAULTS['val_ratio']})",
    ),
    checkpoint_every: int | None = typer.Option(
        None,
        "--checkpoint-every",
        help="Write checkpoints/epoch-NNN.keras every N epochs. "
        f"(default: {DEFAULTS['checkpoint_every']})",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Model folder to write. (default: models/ARCH-SIZE)"
    ),
    weights: str | None = typer.Option(
        None, "--weights", help="Fine-tune from a .keras file or model folder of the same arch."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its last finished epoch."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in --out."),
    seed: int | None = typer.Option(None, "--seed", help="(default: 0)"),
    samples: int | None = typer.Option(
        None, "--samples", help=f"Synthetic dataset size. (default: {DEFAULTS['samples']})"
    ),
    augment: str | None = typer.Option(
        None,
        "--augment",
        help="Augmentations to use: 'all', 'none' or a comma list of: "
        + ", ".join(aug.ORDER)
        + ". (default: all)",
    ),
    no_augment: bool = typer.Option(False, "--no-augment", help="Switch all augmentations off."),
    loss: str | None = typer.Option(
        None, "--loss", help=f"Segmentation loss: ce or focal. (default: {DEFAULTS['loss']})"
    ),
    boundary_weight: float | None = typer.Option(
        None,
        "--boundary-weight",
        help=f"Weight of the boundary loss (0 = off). (default: {DEFAULTS['boundary_weight']})",
    ),
    logit_scale: float | None = typer.Option(
        None,
        "--logit-scale",
        help="Multiply the exported net's logits by K (its last logits convolution's weights "
        "and bias; temperature 1/K): the masks do not change, the probabilities sharpen. "
        "harness demo uses 3 so a briefly trained net is as confident as a long training "
        f"(softmax inputs past 11.09). (default: {DEFAULTS['logit_scale']})",
    ),
    matting_weight: float | None = typer.Option(
        None,
        "--matting-weight",
        help="Weight of the matting loss (alpha L1 + composition), used when the data has "
        "alpha mattes (0 = off). (default: 1.0 for a folder with mattes, else 0)",
    ),
    strategy: str | None = typer.Option(
        None,
        "--strategy",
        help="Devices: auto (mirrored over several GPUs, else one device), mirrored, "
        "one-device or cpu. --batch-size is the global batch, split across replicas. "
        "(default: auto)",
    ),
    mixed_precision: bool = typer.Option(
        False,
        "--mixed-precision",
        help="Compute in float16 on GPUs (mixed_float16; losses and the saved model stay "
        "float32). Refused on a CPU.",
    ),
) -> None:
    """Train a portrait-segmentation net (2-channel logits) into a model folder."""
    if list_archs:
        _list_archs()
        return
    augmentations = aug.parse(augment, disabled=no_augment) if (augment or no_augment) else None
    given: dict[str, Any] = {
        "arch": arch,
        "width": width,
        "input_size": input_size,
        "channels": channels,
        "data": data,
        "samples": samples,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "val_ratio": val_ratio,
        "checkpoint_every": checkpoint_every,
        "seed": seed,
        "augment": None if augmentations is None else tuple(augmentations),
        "loss": loss,
        "boundary_weight": boundary_weight,
        "matting_weight": matting_weight,
        "weights": weights,
        "logit_scale": logit_scale,
        "layout": layout,
        "cache": None if cache is None else str(cache),
        "strategy": strategy,
        "mixed_precision": True if mixed_precision else None,
    }
    if resume:
        if overwrite:
            raise UsageError("--resume and --overwrite cannot be used together")
        default_out = TrainConfig(
            arch=arch or DEFAULTS["arch"], input_size=input_size or DEFAULTS["input_size"]
        ).out_path
        config = _resume_config(out or default_out, given)
    else:
        config = TrainConfig(
            **{k: v for k, v in given.items() if v is not None},
            out=None if out is None else str(out),
        )

    from harness.train import trainer

    result = trainer.run(config, resume=resume, overwrite=overwrite)
    minutes, seconds = divmod(int(result.seconds), 60)
    console().print(
        f"[green]done[/]: best val IoU [bold]{result.best_val_iou:.4f}[/] at epoch "
        f"{result.best_epoch} ({len(result.epochs)} epochs, {minutes}m{seconds:02d}s) -> "
        f"{result.folder}",
        highlight=False,
    )
