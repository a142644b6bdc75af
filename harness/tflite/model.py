"""Read any ``.tflite``: I/O tensors, quantization, op list and the options the GPU verdicts need.

The one flatbuffer reader of the harness: convert, inspect, diagnose and bench use it through
:mod:`harness.convert.tflite_model`, the virtual phone's ``benchmark_model`` through
:mod:`harness.virtual.benchmark_model.tflite_graph`. The flatbuffer is optionally checked by LiteRT's
verifier (an ``Interpreter`` is constructed but never allocated, so models with custom ops that
only a delegate resolves still load), then read with the schema bindings shipped in
``ai_edge_litert``, imported on first use. Only numpy and the standard library are imported
besides: the virtual phone starts in a fraction of a second and never loads TensorFlow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ModelError

__all__ = ["OpInfo", "Quantization", "TensorInfo", "TfliteModel", "read_tflite"]

_TFLITE_IDENTIFIER = b"TFL3"
_SMALL_CONST = 64  # constant tensors up to this many elements keep their values (perm, axes)


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Quantization | None:
        if not data:
            return None
        return cls(scale=float(data["scale"]), zero_point=int(data["zero_point"]))


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy spelling of the schema's TensorType: "float32", "int8", ...
    quantization: Quantization | None = None  # per-tensor (first channel's if per-channel)
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
    index: int  # node index in subgraph 0 (the interpreter's too)
    name: str  # builtin name (SOFTMAX) or the custom code (Convolution2DTransposeBias)
    inputs: tuple[int, ...]  # tensor indices, -1 = optional input left out
    outputs: tuple[int, ...]
    custom: bool = False
    version: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # only the fields read below


@dataclass(frozen=True)
class TfliteModel:
    path: Path | None
    size: int
    sha256: str  # "" when read with ``digest=False``
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    input_indices: tuple[int, ...]
    output_indices: tuple[int, ...]
    subgraphs: int = 1
    # (mean, std) per input from the TFLITE_METADATA buffer (None: not stated); () if no metadata
    input_normalization: tuple[tuple[tuple[float, ...], tuple[float, ...]] | None, ...] = ()

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


def _verify(data: bytes, where: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_content=data)
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError with multi-line text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{where} is corrupt or truncated: {first}") from exc


def read_tflite(
    source: Path | str | bytes, *, verify: bool = True, digest: bool = True
) -> TfliteModel:
    """Parse a ``.tflite`` file (or its bytes). Raises ModelError if it is not a valid model.

    ``verify=False`` skips LiteRT's verifier (for models the harness wrote itself, and for the
    virtual phone, whose interpreter verifies the model anyway); ``digest=False`` skips the
    sha256 (``sha256`` is then ""), which only costs time where nobody needs it.
    """
    if isinstance(source, bytes | bytearray):
        data, path, where = bytes(source), None, "the model buffer"
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise ModelError(f"no such .tflite file: {path}")
        data = path.read_bytes()
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ModelError(f"{where} is not a TFLite model (no TFL3 flatbuffer identifier)")
    if verify:
        _verify(data, where)
    try:
        return _parse(data, path, digest)
    except ModelError:
        raise
    except Exception as exc:  # flatbuffers raises IndexError/struct.error on bad offsets
        raise ModelError(f"{where} could not be parsed: {type(exc).__name__}: {exc}") from exc


def _parse(data: bytes, path: Path | None, digest: bool) -> TfliteModel:
    s = _schema()
    op_names = _enum_names(s.BuiltinOperator)
    type_names = _enum_names(s.TensorType)
    model = s.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError("the model has no subgraph")
    graph = model.Subgraphs(0)

    tensors: list[TensorInfo] = []
    n_buffers = model.BuffersLength()
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = _ints(t.ShapeLength(), t.ShapeAsNumpy)
        dtype = type_names.get(t.Type(), "?").lower()  # the schema's names are numpy's, upper
        quant, per_channel = _quantization(t)
        raw = _buffer_bytes(model, t.Buffer(), n_buffers)
        value = None
        if raw and dtype in ("int32", "int64", "float32"):
            arr = np.frombuffer(raw, dtype=dtype)
            if arr.size <= _SMALL_CONST:
                value = tuple(float(v) for v in arr)
        raw_name = t.Name()
        name = raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{i}"
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
        inputs = _ints(op.InputsLength(), op.InputsAsNumpy)
        outputs = _ints(op.OutputsLength(), op.OutputsAsNumpy)
        ops.append(OpInfo(i, name, inputs, outputs, custom, version, _options(s, op, name)))

    return TfliteModel(
        path=path,
        size=len(data),
        sha256=_sha256(data) if digest else "",
        tensors=tuple(tensors),
        ops=tuple(ops),
        input_indices=_ints(graph.InputsLength(), graph.InputsAsNumpy),
        output_indices=_ints(graph.OutputsLength(), graph.OutputsAsNumpy),
        subgraphs=model.SubgraphsLength(),
        input_normalization=_metadata_normalization(model, n_buffers),
    )


def _metadata_normalization(model: Any, n_buffers: int) -> tuple:
    """Input normalizations stated in the model's ``TFLITE_METADATA`` buffer, if any."""
    from harness.tflite.metadata import METADATA_NAME, input_normalizations

    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() != METADATA_NAME or not 0 < entry.Buffer() < n_buffers:
            continue
        buf = model.Buffers(entry.Buffer())
        if buf is not None and buf.DataLength():
            return input_normalizations(buf.DataAsNumpy().tobytes())
    return ()


def _sha256(data: bytes) -> str:
    import hashlib  # here, not at the top: the virtual phone's start-up never needs it

    return hashlib.sha256(data).hexdigest()


def _ints(length: int, as_numpy: Callable[[], Any]) -> tuple[int, ...]:
    """A flatbuffer int vector; an absent one reads as ``()`` (its ``AsNumpy`` returns 0)."""
    return tuple(int(v) for v in as_numpy()) if length else ()


def _quantization(t: Any) -> tuple[Quantization | None, bool]:
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None, False
    scales = q.ScaleAsNumpy()
    zps = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(1, dtype=np.int64)
    return Quantization(float(scales[0]), int(zps[0])), q.ScaleLength() > 1


def _buffer_bytes(model: Any, buffer_index: int, n_buffers: int) -> bytes | None:
    """A constant tensor's bytes (``b""`` if large or stored outside the flatbuffer); None if
    the tensor is not constant. Like the runtime, data outside the flatbuffer counts only with
    an offset > 1 (exporters write 1 as a placeholder)."""
    if buffer_index <= 0 or buffer_index >= n_buffers:
        return None
    buf = model.Buffers(buffer_index)
    if buf is None:
        return None
    if buf.DataLength() == 0:
        return b"" if buf.Offset() > 1 else None
    return buf.DataAsNumpy().tobytes() if buf.DataLength() <= _SMALL_CONST * 8 else b""


def _options(s: Any, op: Any, name: str) -> dict[str, Any]:
    """The builtin options the GPU verdicts look at (others are left out)."""
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
