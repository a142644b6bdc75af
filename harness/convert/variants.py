"""Heads, precisions, variants and the ``variants.json`` manifest (pure Python, no TF).

A *variant* is one (head, precision) pair of one trained model; its stable id, e.g.
``softmax-fp32`` or ``sigmoid-int8-dynamic``, names the file ``variants/<id>.tflite``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.convert.gpu import GpuVerdict, gpu_verdict
from harness.convert.specs import InputSpec, OutputSpec
from harness.errors import ModelError, UsageError
from harness.tflite.model import TfliteModel

__all__ = [
    "DEFAULT_HEADS",
    "DEFAULT_PRECISIONS",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "Head",
    "Manifest",
    "Precision",
    "Variant",
    "VariantRecord",
    "atomic_write_bytes",
    "parse_heads",
    "parse_precisions",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME = "variants.json"
MANIFEST_SCHEMA = 1


class Head(StrEnum):
    """Re-expressions of the 2-channel logits ``z = [z_bg, z_fg]``."""

    SOFTMAX = "softmax"  # softmax(z) over channels: [p_bg, p_fg]
    SIGMOID = "sigmoid"  # sigmoid(z_fg - z_bg): p_fg, 1 channel (== softmax's p_fg)
    SIGSOFTMAX = "sigsoftmax"  # softmax(z + log_sigmoid(z)), stable form (FACTS.md §2)
    LOGITS = "logits"  # z itself
    ARGMAX = "argmax"  # uint8 mask [1, H, W]


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"  # float16 weights, float32 compute on CPU
    INT8_DYNAMIC = "int8-dynamic"  # int8 weights, dynamic-range activations, float I/O
    INT8 = "int8"  # full integer PTQ, int8 input and output
    QAT = "qat"  # quantization-aware fine-tuning, then full integer like INT8
    # like INT8 with some layers kept float (--float-layers); built only on request
    INT8_SELECTIVE = "int8-selective"

    @property
    def integer_io(self) -> bool:
        return self in (Precision.INT8, Precision.QAT, Precision.INT8_SELECTIVE)


DEFAULT_HEADS: tuple[Head, ...] = tuple(Head)
DEFAULT_PRECISIONS: tuple[Precision, ...] = tuple(
    p for p in Precision if p is not Precision.INT8_SELECTIVE
)


def _parse_list(text: str, enum: type[StrEnum], what: str) -> tuple[Any, ...]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"no {what} given")
    if items == ["all"]:
        return DEFAULT_PRECISIONS if enum is Precision else tuple(enum)
    out: list[Any] = []
    for item in items:
        try:
            value = enum(item)
        except ValueError:
            known = ", ".join(str(v) for v in enum)
            raise UsageError(f"unknown {what} {item!r} (known: {known})") from None
        if value not in out:
            out.append(value)
    return tuple(out)


def parse_heads(text: str) -> tuple[Head, ...]:
    """``"softmax,sigmoid"`` or ``"all"`` -> heads; unknown names raise UsageError."""
    return _parse_list(text, Head, "head")


def parse_precisions(text: str) -> tuple[Precision, ...]:
    return _parse_list(text, Precision, "precision")


@dataclass(frozen=True, order=True)
class Variant:
    head: Head
    precision: Precision

    @property
    def id(self) -> str:
        return f"{self.head}-{self.precision}"

    @property
    def filename(self) -> str:
        return f"{self.id}.tflite"

    @classmethod
    def parse(cls, variant_id: str) -> Variant:
        head, _, precision = variant_id.partition("-")
        try:
            return cls(Head(head), Precision(precision))
        except ValueError:
            raise UsageError(f"not a variant id: {variant_id!r}") from None

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class VariantRecord:
    """One manifest entry: the file, its I/O contract, its ops, GPU verdict and accuracy."""

    variant: Variant
    file: str  # relative to the model folder
    sha256: str
    size: int
    input: InputSpec
    output: OutputSpec
    ops: tuple[str, ...]
    gpu: GpuVerdict
    accuracy: dict[str, Any] | None = None
    converter: dict[str, Any] = field(default_factory=dict)
    # per-layer quantization error (convert --explain-quantization), int8 variants only
    quantization: dict[str, Any] | None = None

    @classmethod
    def of_file(
        cls,
        tm: TfliteModel,
        variant: Variant,
        file: str,
        input_spec: InputSpec,
        output_spec: OutputSpec,
        *,
        accuracy: dict[str, Any] | None = None,
        converter: dict[str, Any] | None = None,
    ) -> VariantRecord:
        """The record of a variant written to ``file`` and read back as ``tm``: its hash,
        size, ops and GPU verdict come from the file itself."""
        return cls(
            variant=variant,
            file=file,
            sha256=tm.sha256,
            size=tm.size,
            input=input_spec,
            output=output_spec,
            ops=tm.op_names,
            gpu=gpu_verdict(tm),
            accuracy=accuracy,
            converter=converter or {},
        )

    @property
    def id(self) -> str:
        return self.variant.id

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.quantization is None else {"quantization": self.quantization}
        return {
            "id": self.id,
            "head": str(self.variant.head),
            "precision": str(self.variant.precision),
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "ops": list(self.ops),
            "gpu": self.gpu.to_dict(),
            "accuracy": self.accuracy,
            "converter": self.converter,
            **extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantRecord:
        return cls(
            variant=Variant(Head(data["head"]), Precision(data["precision"])),
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            input=InputSpec.from_dict(data["input"]),
            output=OutputSpec.from_dict(data["output"]),
            ops=tuple(data.get("ops", ())),
            gpu=GpuVerdict.from_dict(data["gpu"]),
            accuracy=data.get("accuracy"),
            converter=dict(data.get("converter", {})),
            quantization=data.get("quantization"),
        )


@dataclass(frozen=True)
class Manifest:
    model: str
    variants: tuple[VariantRecord, ...] = ()
    eval_set: dict[str, Any] | None = None  # name, fingerprint, n, size
    float_model: dict[str, Any] | None = None  # the Keras model's own accuracy vs ground truth
    source: dict[str, Any] = field(default_factory=dict)  # train.json digest, arch, ...

    def get(self, variant_id: str) -> VariantRecord:
        for record in self.variants:
            if record.id == variant_id:
                return record
        raise UsageError(f"variant {variant_id!r} is not in the manifest of {self.model!r}")

    def with_records(self, records: Iterable[VariantRecord]) -> Manifest:
        """Replace entries with the same id, keep the others, order by (head, precision)."""
        by_id = {r.id: r for r in self.variants}
        for r in records:
            by_id[r.id] = r
        ordered = sorted(by_id.values(), key=lambda r: _order_key(r.variant))
        return replace(self, variants=tuple(ordered))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": MANIFEST_SCHEMA,
            "model": self.model,
            "source": self.source,
            "eval_set": self.eval_set,
            "float_model": self.float_model,
            "variants": [r.to_dict() for r in self.variants],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("schema") != MANIFEST_SCHEMA:
            raise ModelError(f"unsupported variants.json schema {data.get('schema')!r}")
        return cls(
            model=str(data["model"]),
            variants=tuple(VariantRecord.from_dict(v) for v in data.get("variants", [])),
            eval_set=data.get("eval_set"),
            float_model=data.get("float_model"),
            source=dict(data.get("source", {})),
        )


def _order_key(v: Variant) -> tuple[int, int]:
    return (list(Head).index(v.head), list(Precision).index(v.precision))


def read_manifest(path: Path) -> Manifest:
    """Read ``variants.json`` (a path to the file or to its model folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
        return Manifest.from_dict(data)
    except FileNotFoundError:
        raise ModelError(f"no manifest at {path} (run `harness convert` first)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"corrupt manifest {path}: {exc}") from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = Path(folder) / MANIFEST_NAME
    text = json.dumps(manifest.to_dict(), indent=2, allow_nan=True) + "\n"
    atomic_write_bytes(path, text.encode())
    return path
