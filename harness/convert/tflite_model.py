"""Read any ``.tflite``: I/O tensors, quantization, op list and the options the GPU verdict needs.

The flatbuffer is first checked by LiteRT's verifier (an ``Interpreter`` is constructed but
never allocated, so models with custom ops that only a delegate resolves still load), then read
lazily with the schema bindings shipped in ``ai_edge_litert``. No TensorFlow import.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.convert.specs import Quantization
from harness.errors import ModelError

__all__ = ["OpInfo", "TensorInfo", "TfliteModel", "read_tflite"]

_TFLITE_IDENTIFIER = b"TFL3"
_SMALL_CONST = 64  # constant tensors up to this many elements keep their values (perm, axes)


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization | None = None
    is_const: bool = False
    value: tuple[float, ...] | None = None  # small constants only (perm, axis, ...)
    per_channel: bool = False  # more than one scale: per-channel quantized weights

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "quantization": self.quantization.to_dict() if self.quantization else None,
        }


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str  # builtin name (SOFTMAX) or the custom code (Convolution2DTransposeBias)
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    custom: bool = False
    version: int = 1
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TfliteModel:
    path: Path | None
    size: int
    sha256: str
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    input_indices: tuple[int, ...]
    output_indices: tuple[int, ...]
    subgraphs: int = 1

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return tuple(self.tensors[i] for i in self.input_indices)

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return tuple(self.tensors[i] for i in self.output_indices)

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)

    def op_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.op_names).items()))

    def producer(self, tensor_index: int) -> OpInfo | None:
        for op in self.ops:
            if tensor_index in op.outputs:
                return op
        return None

    def tensor(self, index: int) -> TensorInfo | None:
        return self.tensors[index] if 0 <= index < len(self.tensors) else None


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


_DTYPES = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "INT32": "int32",
    "UINT8": "uint8",
    "INT64": "int64",
    "BOOL": "bool",
    "INT16": "int16",
    "INT8": "int8",
    "FLOAT64": "float64",
    "UINT32": "uint32",
    "UINT16": "uint16",
}


def _verify(data: bytes, where: str) -> None:
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ModelError(f"{where} is not a TFLite model (no TFL3 flatbuffer identifier)")
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_content=data)
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError with multi-line text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{where} is corrupt or truncated: {first}") from exc


def read_tflite(source: Path | str | bytes, *, verify: bool = True) -> TfliteModel:
    """Parse a ``.tflite`` file (or its bytes). Raises ModelError if it is not a valid model."""
    if isinstance(source, bytes | bytearray):
        data, path, where = bytes(source), None, "the model buffer"
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise ModelError(f"no such .tflite file: {path}")
        data = path.read_bytes()
    if verify:
        _verify(data, where)
    try:
        return _parse(data, path)
    except ModelError:
        raise
    except Exception as exc:  # flatbuffers raises IndexError/struct.error on bad offsets
        raise ModelError(f"{where} could not be parsed: {type(exc).__name__}: {exc}") from exc


def _parse(data: bytes, path: Path | None) -> TfliteModel:
    s = _schema()
    op_names = _enum_names(s.BuiltinOperator)
    type_names = _enum_names(s.TensorType)
    model = s.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError("the model has no subgraph")
    graph = model.Subgraphs(0)

    tensors: list[TensorInfo] = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        dtype = _DTYPES.get(type_names.get(t.Type(), ""), type_names.get(t.Type(), "?").lower())
        quant, per_channel = _quantization(t)
        raw = _buffer_bytes(model, t.Buffer())
        value = None
        if raw and dtype in ("int32", "int64", "float32"):
            arr = np.frombuffer(raw, dtype=dtype)
            if arr.size <= _SMALL_CONST:
                value = tuple(float(v) for v in arr)
        name = t.Name().decode("utf-8", "replace") if t.Name() else f"tensor_{i}"
        tensors.append(
            TensorInfo(i, name, shape, dtype, quant, raw is not None, value, per_channel)
        )

    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode()
        if code == s.BuiltinOperator.CUSTOM:
            codes.append(
                (custom.decode("utf-8", "replace") if custom else "CUSTOM", True, oc.Version())
            )
        else:
            codes.append((op_names.get(code, f"BUILTIN_{code}"), False, oc.Version()))

    ops: list[OpInfo] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name, custom, version = codes[op.OpcodeIndex()]
        inputs = tuple(int(v) for v in op.InputsAsNumpy()) if op.InputsLength() else ()
        outputs = tuple(int(v) for v in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        ops.append(OpInfo(i, name, inputs, outputs, custom, version, _options(s, op, name)))

    return TfliteModel(
        path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        tensors=tuple(tensors),
        ops=tuple(ops),
        input_indices=tuple(int(v) for v in graph.InputsAsNumpy()),
        output_indices=tuple(int(v) for v in graph.OutputsAsNumpy()),
        subgraphs=model.SubgraphsLength(),
    )


def _quantization(t: Any) -> tuple[Quantization | None, bool]:
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None, False
    scales = q.ScaleAsNumpy()
    zps = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(1, dtype=np.int64)
    return Quantization(float(scales[0]), int(zps[0])), q.ScaleLength() > 1


def _buffer_bytes(model: Any, buffer_index: int) -> bytes | None:
    if buffer_index <= 0 or buffer_index >= model.BuffersLength():
        return None
    buf = model.Buffers(buffer_index)
    if buf.DataLength() == 0:
        return None if buf.Size() == 0 else b""  # external (offset) buffers: const, no value
    return buf.DataAsNumpy().tobytes() if buf.DataLength() <= _SMALL_CONST * 8 else b""


def _options(s: Any, op: Any, name: str) -> dict[str, Any]:
    """The builtin options the verdict looks at (others are left out)."""
    table = op.BuiltinOptions()
    if table is None:
        return {}
    readers = {
        "SOFTMAX": (s.SoftmaxOptions, {"beta": "Beta"}),
        "ARG_MAX": (s.ArgMaxOptions, {"output_type": "OutputType"}),
        "CONV_2D": (s.Conv2DOptions, {"fused_activation": "FusedActivationFunction"}),
        "DEPTHWISE_CONV_2D": (
            s.DepthwiseConv2DOptions,
            {"fused_activation": "FusedActivationFunction", "depth_multiplier": "DepthMultiplier"},
        ),
        "FULLY_CONNECTED": (
            s.FullyConnectedOptions,
            {
                "fused_activation": "FusedActivationFunction",
                "asymmetric_quantize_inputs": "AsymmetricQuantizeInputs",
            },
        ),
    }
    if name not in readers:
        return {}
    cls, fields = readers[name]
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for key, getter in fields.items():
        out[key] = getattr(obj, getter)()
    return out
