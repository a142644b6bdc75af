"""One I/O spec resolution: what a model's input expects and which output is the mask.

Used by ``inspect``, ``bench``, ``diagnose``, the desktop reference and the report, so that a
model is fed and read the same way everywhere. Input normalization is taken, in this order,
from:

1. the variant manifest (``variants.json``, written by ``harness convert``/``import``);
2. the model's own TFLite metadata (``NormalizationOptions`` in ``TFLITE_METADATA``);
3. flags: ``--mean/--std`` or a named ``--input-range`` (``0,1``, ``-1,1``, ``0,255``);
4. otherwise it is **unknown**: raw pixels 0..255 are fed and a warning travels with the
   spec (terminal, JSON, store, report). It is never silently assumed.

A flag that contradicts the manifest or the metadata is refused (``UsageError``, exit 2): the
file states its own normalization, and a different one would measure a different model.
``--output NAME|INDEX`` picks the mask output (others are ignored); by default the first
per-pixel output is the mask. Pure: a :class:`TfliteModel` and options in, a spec out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from harness.convert.specs import (
    Activation,
    InputSpec,
    Normalization,
    OutputSpec,
    infer_output_spec,
)
from harness.errors import UsageError
from harness.tflite.model import TensorInfo, TfliteModel

if TYPE_CHECKING:
    from harness.convert.variants import VariantRecord

__all__ = [
    "INPUT_RANGES",
    "IoOptions",
    "IoSpec",
    "NormSource",
    "Prior",
    "resolve_io",
    "select_output",
]

# A named input range -> the normalization that maps pixels 0..255 onto it.
INPUT_RANGES: dict[str, Normalization] = {
    "0,1": Normalization(mean=(0.0,), std=(255.0,)),
    "-1,1": Normalization(mean=(127.5,), std=(127.5,)),
    "0,255": Normalization(mean=(0.0,), std=(1.0,)),
}

UNKNOWN_WARNING = (
    "input normalization unknown (no manifest, no TFLite metadata, no --mean/--std or "
    "--input-range): raw pixels 0..255 are fed, so accuracy figures may be meaningless"
)


class NormSource(StrEnum):
    """Where a spec's input normalization came from."""

    MANIFEST = "manifest"
    METADATA = "metadata"
    FLAG = "flag"
    UNKNOWN = "unknown"


class Prior(StrEnum):
    """What fills the 4th (prior mask) channel of a 4-channel input."""

    GT = "gt"  # the ground-truth mask, perturbed (what training saw)
    EMPTY = "empty"  # all zeros: the first frame of a video
    PREVIOUS = "previous"  # the desktop model's mask of the previous eval image

    @classmethod
    def parse(cls, text: str | None) -> Prior | None:
        if text is None:
            return None
        try:
            return cls(text.strip().lower())
        except ValueError:
            known = "|".join(p.value for p in cls)
            raise UsageError(f"--prior {text!r}: expected {known}") from None


@dataclass(frozen=True)
class IoOptions:
    """The user's I/O overrides (CLI flags); every field None = resolve from the model."""

    mean: str | None = None
    std: str | None = None
    input_range: str | None = None
    output: str | None = None  # output tensor name or position
    fg_channel: int | None = None
    activation: str | None = None
    prior: str | None = None
    resize: str | None = None  # eval photos to the input: stretch | letterbox (harness.evalset)
    mask_class: int | None = None  # class-index masks: the foreground class (255 = ignore)
    full_res_iou: bool | None = None  # also score IoU vs ground truth at each photo's own size

    def __post_init__(self) -> None:
        from harness.evalset import Resize

        self.normalization()  # bad flags fail at once, in one line
        self.activation_enum()
        Prior.parse(self.prior)
        Resize.parse(self.resize)
        if self.mask_class is not None and not 0 <= self.mask_class < 255:
            raise UsageError(f"--mask-class {self.mask_class}: expected 0..254 (255 = ignore)")

    def normalization(self) -> Normalization | None:
        if (self.mean is None) != (self.std is None):
            raise UsageError("--mean and --std go together")
        if self.mean is not None and self.input_range is not None:
            raise UsageError("give --mean/--std or --input-range, not both")
        if self.input_range is not None:
            key = self.input_range.replace(" ", "")
            if key not in INPUT_RANGES:
                raise UsageError(
                    f"--input-range {self.input_range!r}: expected one of {', '.join(INPUT_RANGES)}"
                )
            return INPUT_RANGES[key]
        if self.mean is not None:
            return Normalization.parse(self.mean, self.std or "")
        return None

    def activation_enum(self) -> Activation | None:
        if self.activation is None:
            return None
        try:
            return Activation(self.activation.lower())
        except ValueError:
            known = ", ".join(a.value for a in Activation)
            raise UsageError(f"unknown --activation {self.activation!r} (known: {known})") from None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> IoOptions:
        return cls(**(data or {}))

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any]) -> IoOptions:
        """The I/O flags among a command's parameters (its ``locals()``), checked: bad values
        fail here, in one line. A switch left off (False) is unset, like an absent value."""
        names = [f.name for f in fields(cls)]
        return cls(**{n: flags[n] for n in names if n in flags and flags[n] is not False})


@dataclass(frozen=True)
class IoSpec:
    """A resolved input + mask-output spec, where the normalization came from, and warnings."""

    input: InputSpec
    output: OutputSpec
    normalization_source: NormSource
    prior: Prior | None = None  # 4-channel inputs only
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "normalization_source": str(self.normalization_source),
            "prior": None if self.prior is None else str(self.prior),
            "warnings": list(self.warnings),
        }


def _same(a: Normalization, b: Normalization, channels: int) -> bool:
    (am, as_), (bm, bs) = a.per_channel(channels), b.per_channel(channels)
    close = [
        abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))
        for x, y in zip(am + as_, bm + bs, strict=True)
    ]
    return all(close)


def _text(n: Normalization) -> str:
    return f"mean {list(n.mean)} std {list(n.std)}"


def _is_map(t: TensorInfo) -> bool:
    return len(t.shape) in (3, 4) and all(int(d) > 1 for d in t.shape[1:3])


def select_output(tm: TfliteModel, output: str | None, where: str = "the model") -> TensorInfo:
    """The mask output: ``--output`` by position or name, else the first per-pixel output."""
    outputs = tm.outputs
    names = ", ".join(f"{i}={t.name}" for i, t in enumerate(outputs))
    if output is None:
        maps = [t for t in outputs if _is_map(t)]
        if not maps:
            raise UsageError(f"{where} has no per-pixel output ({names}); pick one with --output")
        return maps[0]
    text = output.strip()
    if text.isdigit():
        if int(text) >= len(outputs):
            raise UsageError(f"--output {text}: {where} has {len(outputs)} output(s): {names}")
        return outputs[int(text)]
    for t in outputs:
        if t.name == text:
            return t
    raise UsageError(f"--output {text!r}: no such output in {where} (outputs: {names})")


def _input_normalization(
    tm: TfliteModel, record: VariantRecord | None, flags: Normalization | None, channels: int
) -> tuple[Normalization | None, NormSource]:
    stated: list[tuple[Normalization, NormSource]] = []
    if record is not None and record.input.normalization is not None:
        stated.append((record.input.normalization, NormSource.MANIFEST))
    meta = tm.input_normalization[0] if tm.input_normalization else None
    if meta is not None and all(v != 0 for v in meta[1]) and len(meta[0]) == len(meta[1]):
        stated.append((Normalization(mean=meta[0], std=meta[1]), NormSource.METADATA))
    if flags is not None:
        for norm, source in stated:
            if not _same(norm, flags, channels):
                raise UsageError(
                    f"the given normalization ({_text(flags)}) contradicts the {source}'s "
                    f"({_text(norm)}); drop the flag"
                )
    if stated:
        return stated[0]
    if flags is not None:
        return flags, NormSource.FLAG
    return None, NormSource.UNKNOWN


def resolve_io(
    tm: TfliteModel,
    record: VariantRecord | None = None,
    options: IoOptions | None = None,
    where: str = "the model",
) -> IoSpec:
    """The I/O spec of ``tm`` (a manifest ``record`` if it has one), with ``options`` applied."""
    options = options or IoOptions()
    if not tm.inputs or not tm.outputs:
        raise UsageError(f"{where} has no inputs or outputs")
    if len(tm.inputs) != 1:
        raise UsageError(f"{where} has {len(tm.inputs)} inputs; one image input is supported")
    t_in = tm.inputs[0]
    channels = int(t_in.shape[3]) if len(t_in.shape) == 4 else 1
    norm, source = _input_normalization(tm, record, options.normalization(), channels)
    base = record.input if record is not None else None
    input_spec = InputSpec(
        t_in.name,
        t_in.index,
        tuple(t_in.shape),
        t_in.dtype,
        norm,
        t_in.quantization,
        base.color if base else "RGB",
        base.layout if base else "NHWC",
    )
    output_spec = _output_spec(tm, record, options, where)
    warnings: list[str] = []
    if source is NormSource.UNKNOWN and not (
        t_in.dtype in ("uint8", "int8") and not t_in.quantization
    ):
        warnings.append(UNKNOWN_WARNING)
    prior = Prior.parse(options.prior)
    if channels == 4:
        prior = prior or Prior.GT
    elif prior is not None:
        raise UsageError(f"--prior needs a 4-channel input; {where} takes {channels} channel(s)")
    return IoSpec(input_spec, output_spec, source, prior, tuple(warnings))


def _output_spec(
    tm: TfliteModel, record: VariantRecord | None, options: IoOptions, where: str
) -> OutputSpec:
    activation = options.activation_enum()
    if record is not None and options.output is None:
        spec = record.output
        if activation is None and options.fg_channel is None:
            return spec
        t_out = tm.tensor(spec.index) or select_output(tm, None, where)
    else:
        t_out = select_output(tm, options.output, where)
        spec = None
        if record is not None and record.output.index == t_out.index:
            spec = record.output
    if spec is not None and activation is None:
        activation = spec.activation
    fg = options.fg_channel
    channels = int(t_out.shape[-1]) if t_out.shape else 1
    if fg is not None and not 0 <= fg < max(channels, 1):
        raise UsageError(
            f"--fg-channel {fg}: output {t_out.name!r} of {where} has {channels} channel(s) "
            f"(0-{max(channels, 1) - 1})"
        )
    if fg is None and spec is not None:
        fg = spec.foreground_channel
    return infer_output_spec(
        name=t_out.name,
        index=t_out.index,
        shape=tuple(t_out.shape),
        dtype=t_out.dtype,
        quantization=t_out.quantization,
        activation=activation,
        foreground_channel=fg,
    )
