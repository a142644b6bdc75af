"""``harness inspect``: I/O, ops, size and GPU verdict of any ``.tflite``.

For a variant written by ``harness convert`` the specs come from its manifest (matched by
sha256). For any other model, the output semantics are inferred from the output shape (1
channel = foreground probability, 2 channels = ``[bg, fg]`` probabilities, integer = mask);
flags override normalization, foreground channel and activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.convert.gpu import GpuVerdict, gpu_verdict
from harness.convert.specs import (
    Activation,
    InputSpec,
    Normalization,
    OutputSpec,
    infer_output_spec,
)
from harness.convert.tflite_model import TfliteModel, read_tflite
from harness.convert.variants import MANIFEST_NAME, VariantRecord, read_manifest
from harness.errors import HarnessError, UsageError

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
    normalization_source: str = "inferred"  # manifest | flag | none (raw pixels 0..255)
    # an int8 variant's per-layer error vs its float model (convert --explain-quantization)
    quantization: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.model.size,
            "sha256": self.model.sha256,
            "variant": self.variant_id,
            "source": self.source,
            "input": {**self.input.to_dict(), "normalization_source": self.normalization_source},
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


def inspect_tflite(
    path: Path,
    *,
    normalization: Normalization | None = None,
    foreground_channel: int | None = None,
    activation: Activation | None = None,
    output_index: int = 0,
) -> Inspection:
    """Read ``path`` and describe it; raises ModelError for anything that is not a model."""
    path = Path(path)
    tm = read_tflite(path)
    if not tm.inputs or not tm.outputs:
        raise UsageError(f"{path} has no inputs or outputs")
    if not 0 <= output_index < len(tm.outputs):
        raise UsageError(f"--output {output_index}: the model has {len(tm.outputs)} output(s)")
    record = find_manifest_record(path.resolve(), tm.sha256)
    t_out = tm.outputs[output_index]
    if record is not None and output_index == 0:
        input_spec, output_spec, source = record.input, record.output, "manifest"
        norm_source = "manifest" if record.input.normalization else "none"
    else:
        t_in = tm.inputs[0]
        input_spec = InputSpec(
            t_in.name, t_in.index, t_in.shape, t_in.dtype, None, t_in.quantization
        )
        output_spec = infer_output_spec(
            name=t_out.name,
            index=t_out.index,
            shape=t_out.shape,
            dtype=t_out.dtype,
            quantization=t_out.quantization,
        )
        source, norm_source = "inferred", "none"
    if activation is not None or foreground_channel is not None:
        output_spec = infer_output_spec(
            name=t_out.name,
            index=t_out.index,
            shape=t_out.shape,
            dtype=t_out.dtype,
            quantization=t_out.quantization,
            activation=activation or (output_spec.activation if source == "manifest" else None),
            foreground_channel=(
                foreground_channel
                if foreground_channel is not None
                else output_spec.foreground_channel
            ),
        )
    if normalization is not None:
        input_spec = InputSpec(
            input_spec.name,
            input_spec.index,
            input_spec.shape,
            input_spec.dtype,
            normalization,
            input_spec.quantization,
            input_spec.color,
            input_spec.layout,
        )
        norm_source = "flag"
    return Inspection(
        path=path,
        model=tm,
        input=input_spec,
        output=output_spec,
        gpu=gpu_verdict(tm),
        source=source,
        variant_id=record.id if record is not None else None,
        normalization_source=norm_source,
        quantization=record.quantization if record is not None else None,
    )
