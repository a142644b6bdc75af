"""What a variant's input expects and what its output means: frozen, JSON-serialisable specs.

These are the words the manifest, ``harness inspect``, the desktop reference and the bench
share. Pure Python: importing this module never loads TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.errors import UsageError
from harness.tflite.model import Quantization  # a tensor's, read from the flatbuffer

__all__ = [
    "Activation",
    "InputSpec",
    "Normalization",
    "OutputSpec",
    "Quantization",
    "Semantics",
    "infer_output_spec",
]


class Semantics(StrEnum):
    """How to read an output tensor."""

    FOREGROUND_PROBABILITY = "foreground_probability"  # 1 channel, P(fg) in [0, 1]
    CLASS_PROBABILITIES = "class_probabilities"  # C channels summing to 1
    LOGITS = "logits"  # no activation; fg prob = sigmoid(z_fg - z_bg) (or sigmoid(z), 1 channel)
    MASK = "mask"  # integer class index per pixel (1 = foreground for 2 classes)


class Activation(StrEnum):
    """The activation already applied inside the model to produce the output."""

    NONE = "none"
    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"
    SIGSOFTMAX = "sigsoftmax"
    ARGMAX = "argmax"


@dataclass(frozen=True)
class Normalization:
    """``x = (pixel - mean) / std`` per channel, pixels float 0..255 (docs/model-folder.md)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Normalization | None:
        if not data:
            return None
        mean = tuple(float(v) for v in data["mean"])
        std = tuple(float(v) for v in data["std"])
        if len(mean) != len(std) or any(s == 0 for s in std):
            raise UsageError(f"bad normalization {data}: mean/std lengths differ or std is 0")
        if not all(math.isfinite(v) for v in mean + std):
            raise UsageError(f"bad normalization {data}: mean and std must be finite numbers")
        return cls(mean=mean, std=std)

    def per_channel(self, channels: int) -> tuple[list[float], list[float]]:
        """Mean and std for ``channels`` channels: one value broadcasts; a 3-value RGB
        normalization gives a 4th (prior mask) channel the mean of its values."""

        def fit(values: tuple[float, ...]) -> list[float]:
            if len(values) == channels:
                return list(values)
            if len(values) == 1:
                return list(values) * channels
            if len(values) == 3 and channels == 4:
                return [*values, sum(values) / 3]
            raise UsageError(
                f"normalization has {len(values)} values for a {channels}-channel input"
            )

        return fit(self.mean), fit(self.std)

    @classmethod
    def parse(cls, mean: str, std: str) -> Normalization:
        """From CLI text like ``127.5`` or ``123.7,116.3,103.5``."""
        try:
            m = tuple(float(v) for v in mean.split(","))
            s = tuple(float(v) for v in std.split(","))
        except ValueError:
            raise UsageError(f"bad --mean/--std: {mean!r} / {std!r} (numbers expected)") from None
        return cls.from_dict({"mean": list(m), "std": list(s)})  # type: ignore[return-value]


@dataclass(frozen=True)
class InputSpec:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float32, int8, uint8
    normalization: Normalization | None = None  # None: feed raw pixels 0..255
    quantization: Quantization | None = None
    color: str = "RGB"
    layout: str = "NHWC"

    @property
    def height(self) -> int:
        return int(self.shape[1])

    @property
    def width(self) -> int:
        return int(self.shape[2])

    @property
    def channels(self) -> int:
        return int(self.shape[3]) if len(self.shape) == 4 else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "normalization": self.normalization.to_dict() if self.normalization else None,
            "quantization": self.quantization.to_dict() if self.quantization else None,
            "color": self.color,
            "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            name=str(data["name"]),
            index=int(data["index"]),
            shape=tuple(int(v) for v in data["shape"]),
            dtype=str(data["dtype"]),
            normalization=Normalization.from_dict(data.get("normalization")),
            quantization=Quantization.from_dict(data.get("quantization")),
            color=str(data.get("color", "RGB")),
            layout=str(data.get("layout", "NHWC")),
        )


@dataclass(frozen=True)
class OutputSpec:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str
    semantics: Semantics
    activation: Activation
    channels: int  # channels of the output tensor (1 for a mask without channel axis)
    foreground_channel: int | None  # for 2-class outputs; None for 1-channel outputs
    quantization: Quantization | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "quantization": self.quantization.to_dict() if self.quantization else None,
            "semantics": str(self.semantics),
            "activation": str(self.activation),
            "channels": self.channels,
            "foreground_channel": self.foreground_channel,
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputSpec:
        fg = data.get("foreground_channel")
        return cls(
            name=str(data["name"]),
            index=int(data["index"]),
            shape=tuple(int(v) for v in data["shape"]),
            dtype=str(data["dtype"]),
            semantics=Semantics(data["semantics"]),
            activation=Activation(data["activation"]),
            channels=int(data["channels"]),
            foreground_channel=None if fg is None else int(fg),
            quantization=Quantization.from_dict(data.get("quantization")),
        )

    def describe(self) -> str:
        """One line for humans, e.g. ``2-class probabilities [bg, fg] (softmax)``."""
        if self.semantics is Semantics.MASK:
            return "uint8 mask per pixel: 1 = foreground, 0 = background"
        if self.channels == 1:
            what = "foreground probability" if self.semantics != Semantics.LOGITS else "logit"
            return f"{what} (1 channel, activation {self.activation})"
        labels = ["bg"] * self.channels
        if self.foreground_channel is not None:
            labels[self.foreground_channel] = "fg"
        kind = "logits" if self.semantics == Semantics.LOGITS else "probabilities"
        return f"{self.channels}-class {kind} [{', '.join(labels)}] (activation {self.activation})"


def infer_output_spec(
    *,
    name: str,
    index: int,
    shape: tuple[int, ...],
    dtype: str,
    quantization: Quantization | None,
    activation: Activation | None = None,
    foreground_channel: int | None = None,
) -> OutputSpec:
    """Semantics of a third-party output from its shape, unless overridden.

    1 channel -> foreground probability (sigmoid assumed); 2 channels -> ``[bg, fg]``
    probabilities (softmax assumed); an integer tensor that is not quantized -> class-index mask.
    ``activation=none`` turns either into logits.
    """
    is_int_mask = dtype in ("uint8", "int32", "int64", "int16") and quantization is None
    rank = len(shape)
    if activation is Activation.ARGMAX or (activation is None and is_int_mask):
        return OutputSpec(
            name, index, shape, dtype, Semantics.MASK, Activation.ARGMAX, 1, None, quantization
        )
    if rank == 4:
        channels = int(shape[3])
    elif rank == 3:  # [1, H, W]: one value per pixel
        channels = 1
    else:
        raise UsageError(f"output {name!r} has shape {list(shape)}: not a per-pixel map")
    if channels == 1:
        act = activation or Activation.SIGMOID
        sem = Semantics.LOGITS if act is Activation.NONE else Semantics.FOREGROUND_PROBABILITY
        return OutputSpec(name, index, shape, dtype, sem, act, 1, None, quantization)
    fg = channels - 1 if foreground_channel is None else foreground_channel
    if not 0 <= fg < channels:
        raise UsageError(f"foreground channel {fg} out of range for {channels} channels")
    act = activation or Activation.SOFTMAX
    sem = Semantics.LOGITS if act is Activation.NONE else Semantics.CLASS_PROBABILITIES
    return OutputSpec(name, index, shape, dtype, sem, act, channels, fg, quantization)
