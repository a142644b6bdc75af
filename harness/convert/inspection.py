"""``harness inspect``: I/O, ops, size and GPU verdict of any ``.tflite``.

For a variant written by ``harness convert`` the specs come from its manifest (matched by
sha256). For any other model, the output semantics are inferred from the output shape (1
channel = foreground probability, 2 channels = ``[bg, fg]`` probabilities, integer = mask)
and the input normalization from the model's TFLite metadata; flags pick the output and
override foreground channel and activation (:mod:`harness.convert.iospec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.convert.gpu import GpuVerdict, gpu_verdict
from harness.convert.iospec import IoOptions, IoSpec, resolve_io
from harness.convert.specs import InputSpec, OutputSpec
from harness.convert.tflite_model import TfliteModel, read_tflite
from harness.convert.variants import MANIFEST_NAME, VariantRecord, read_manifest
from harness.errors import HarnessError

__all__ = ["Inspection", "find_manifest_record", "inspect_tflite"]


@dataclass(frozen=True, eq=False)
class Inspection:
    path: Path
    model: TfliteModel
    input: InputSpec
    output: OutputSpec
    gpu: GpuVerdict
    source: str  # "manifest" or "inferred"
    variant_id: str | None = None
    normalization_source: str = "unknown"  # manifest | metadata | flag | unknown
    io: IoSpec | None = None
    # an int8 variant's per-layer error vs its float model (convert --explain-quantization)
    quantization: dict[str, Any] | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.io.warnings if self.io is not None else ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.model.size,
            "sha256": self.model.sha256,
            "variant": self.variant_id,
            "source": self.source,
            "input": {**self.input.to_dict(), "normalization_source": self.normalization_source},
            "io": self.io.to_dict() if self.io is not None else None,
            "warnings": list(self.warnings),
            "output": self.output.to_dict(),
            "inputs": [t.to_dict() for t in self.model.inputs],
            "outputs": [t.to_dict() for t in self.model.outputs],
            "ops": list(self.model.op_names),
            "op_counts": self.model.op_counts(),
            "subgraphs": self.model.subgraphs,
            "gpu": self.gpu.to_dict(),
            "quantization": self.quantization,
        }


def find_manifest_record(path: Path, sha256: str) -> VariantRecord | None:
    """The manifest entry describing this exact file (models/NAME/variants/<id>.tflite)."""
    for folder in (path.parent.parent, path.parent):
        if not (folder / MANIFEST_NAME).is_file():
            continue
        try:
            manifest = read_manifest(folder)
        except HarnessError:
            continue
        for record in manifest.variants:
            if record.sha256 == sha256:
                return record
    return None


def inspect_tflite(path: Path, options: IoOptions | None = None) -> Inspection:
    """Read ``path`` and describe it; raises ModelError for anything that is not a model.

    The I/O spec comes from :func:`harness.convert.iospec.resolve_io` (manifest, TFLite metadata,
    flags in ``options``), like every other command's.
    """
    path = Path(path)
    tm = read_tflite(path)
    record = find_manifest_record(path.resolve(), tm.sha256)
    io = resolve_io(tm, record, options, where=str(path))
    return Inspection(
        path=path,
        model=tm,
        input=io.input,
        output=io.output,
        gpu=gpu_verdict(tm),
        source="manifest" if record is not None else "inferred",
        variant_id=record.id if record is not None else None,
        normalization_source=str(io.normalization_source),
        io=io,
        quantization=record.quantization if record is not None else None,
    )
