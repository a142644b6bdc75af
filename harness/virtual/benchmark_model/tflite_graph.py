"""The op graph of a ``.tflite`` (subgraph 0) as the virtual GPU delegate judges it.

The file is read by the harness's one reader (:mod:`harness.tflite.model`: the flatbuffer
schema bundled with ai-edge-litert, no TensorFlow); this module keeps the virtual phone's view
of it: schema type names (``"FLOAT32"``), per-tensor scale and zero point, and
:class:`GraphError` for anything that is not a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import ModelError
from harness.tflite.model import read_tflite


class GraphError(ValueError):
    """The file is not a TFLite flatbuffer the reader understands."""


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # schema TensorType name: "FLOAT32", "FLOAT16", "INT8", ...
    is_const: bool
    scale: float | None = None  # per-tensor affine quantization: real = scale * (q - zero_point)
    zero_point: int = 0
    value: tuple[float, ...] | None = None  # small constants only (perm, axis, ...)

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.dtype in ("INT8", "UINT8", "INT16")


@dataclass(frozen=True)
class OpInfo:
    index: int  # node index in subgraph 0 (same as the interpreter's)
    op: str  # builtin operator name ("SOFTMAX") or the custom op's code
    version: int
    inputs: tuple[int, ...]  # tensor indices, -1 = optional input left out
    outputs: tuple[int, ...]
    custom: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # the builtin options the reader reads

    @property
    def name(self) -> str:
        """The op's name under the reader's spelling (the shared GPU op table reads it)."""
        return self.op


@dataclass(frozen=True)
class Graph:
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def producer(self, tensor: int) -> OpInfo | None:
        for op in self.ops:
            if tensor in op.outputs:
                return op
        return None


def read_graph(data: bytes) -> Graph:
    """Parse subgraph 0 of a TFLite model. Raises :class:`GraphError` on anything else.

    LiteRT's verifier is skipped (the interpreter created next verifies the model) and so is
    the sha256: start-up time matters here.
    """
    try:
        model = read_tflite(data, verify=False, digest=False)
    except ModelError as exc:
        raise GraphError(str(exc)) from exc
    tensors = tuple(
        TensorInfo(
            t.index,
            t.name,
            t.shape,
            t.dtype.upper(),
            t.is_const,
            t.quantization.scale if t.quantization else None,
            t.quantization.zero_point if t.quantization else 0,
            t.value,
        )
        for t in model.tensors
    )
    ops = tuple(
        OpInfo(op.index, op.name, op.version, op.inputs, op.outputs, op.custom, op.options)
        for op in model.ops
    )
    return Graph(tensors, ops, model.input_indices, model.output_indices)
