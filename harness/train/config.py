"""The training configuration: one frozen value, validated once, stored in train.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.train import augment, distribute, layouts, nets

LOSSES = ("ce", "focal")

DEFAULTS: dict[str, Any] = {
    "arch": "sinet-lite",
    "width": None,  # None: the arch's default
    "input_size": 128,
    "channels": 3,
    "data": "synthetic",
    "samples": 2000,
    "epochs": 10,
    "batch_size": 16,
    "lr": 3e-3,
    "val_ratio": 0.1,
    "checkpoint_every": 5,
    "seed": 0,
    "augment": augment.ORDER,
    "loss": "ce",
    "boundary_weight": 0.5,
    "matting_weight": None,  # None: 1.0 for a folder with mattes/, else 0 (off)
    "out": None,  # None: models/<arch>-<input size>
    "weights": None,
    "logit_scale": 1.0,  # exported logits x this (temperature 1/K): masks unchanged
    "layout": None,  # None: detected from the folder (harness.train.layouts)
    "strategy": "auto",
    "mixed_precision": False,
    "cache": None,  # a folder for the decoded dataset (.npz), or None
}

# What a resumed run may change; everything else must match the stored run.
# The strategy may change (checkpoints do not depend on it); the precision may not (a mixed
# precision run checkpoints a loss-scale optimizer).
RESUMABLE = frozenset({"epochs", "checkpoint_every", "out", "strategy", "cache"})


@dataclass(frozen=True)
class TrainConfig:
    arch: str = DEFAULTS["arch"]
    width: float | None = DEFAULTS["width"]
    input_size: int = DEFAULTS["input_size"]
    channels: int = DEFAULTS["channels"]
    data: str = DEFAULTS["data"]
    samples: int = DEFAULTS["samples"]
    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    lr: float = DEFAULTS["lr"]
    val_ratio: float = DEFAULTS["val_ratio"]
    checkpoint_every: int = DEFAULTS["checkpoint_every"]
    seed: int = DEFAULTS["seed"]
    augment: tuple[str, ...] = DEFAULTS["augment"]
    loss: str = DEFAULTS["loss"]
    boundary_weight: float = DEFAULTS["boundary_weight"]
    matting_weight: float | None = DEFAULTS["matting_weight"]
    out: str | None = DEFAULTS["out"]
    weights: str | None = DEFAULTS["weights"]
    logit_scale: float = DEFAULTS["logit_scale"]
    layout: str | None = DEFAULTS["layout"]
    strategy: str = DEFAULTS["strategy"]
    mixed_precision: bool = DEFAULTS["mixed_precision"]
    cache: str | None = DEFAULTS["cache"]

    @property
    def synthetic(self) -> bool:
        return self.data == "synthetic"

    @property
    def out_path(self) -> Path:
        return Path(self.out or f"models/{self.arch}-{self.input_size}")

    def validated(self) -> TrainConfig:
        """This config with defaults resolved; UsageError for any value a run cannot use."""
        arch = nets.get_arch(self.arch)
        width = arch.default_width if self.width is None else float(self.width)
        nets.check_input(arch, self.input_size, self.channels, width)
        checks = (
            (self.epochs >= 1, f"--epochs must be at least 1, not {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive, not {self.lr}"),
            (0 < self.val_ratio < 1, f"--val-ratio must be between 0 and 1, not {self.val_ratio}"),
            (
                self.checkpoint_every >= 1,
                f"--checkpoint-every must be at least 1, not {self.checkpoint_every}",
            ),
            (self.samples >= 2, f"--samples must be at least 2, not {self.samples}"),
            (
                self.loss in LOSSES,
                f"unknown --loss {self.loss!r}; choose one of: {', '.join(LOSSES)}",
            ),
            (self.boundary_weight >= 0, "--boundary-weight must not be negative"),
            (
                self.matting_weight is None or self.matting_weight >= 0,
                "--matting-weight must not be negative",
            ),
            (self.seed >= 0, f"--seed must not be negative, not {self.seed}"),
            (
                0 < self.logit_scale <= 100,
                f"--logit-scale must be in (0, 100], not {self.logit_scale}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        distribute.Strategy.parse(self.strategy)
        if self.layout is not None:
            layouts.get_layout(self.layout)
        unknown = [a for a in self.augment if a not in augment.AUGMENTATIONS]
        if unknown:
            raise UsageError(f"unknown augmentation(s): {', '.join(unknown)}")
        ordered = tuple(a for a in augment.ORDER if a in set(self.augment))
        return replace(self, width=width, augment=ordered, out=str(self.out_path))

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["augment"] = list(self.augment)
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        if "augment" in values:
            values["augment"] = tuple(values["augment"])
        return cls(**values)


def merge_for_resume(stored: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """The stored run's config with the options given again on the command line.

    Options in :data:`RESUMABLE` may change; any other option given with a different value
    is an error (a resumed run must train the same thing on the same data).
    """
    changed = {}
    for key, value in overrides.items():
        if value is None:
            continue
        current = getattr(stored, key)
        if key == "augment":
            value = tuple(a for a in augment.ORDER if a in set(value))
        if value == current:
            continue
        if key not in RESUMABLE:
            option = "--" + key.replace("_", "-")
            raise UsageError(
                f"cannot change {option} when resuming (the run used {current!r}, got {value!r})"
            )
        changed[key] = value
    return replace(stored, **changed)
