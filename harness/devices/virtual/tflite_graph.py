"""Read the op graph of a ``.tflite`` file (subgraph 0): what the virtual GPU delegate judges.

Uses the flatbuffer schema bundled with ai-edge-litert (``schema_py_generated``), which imports
in ~0.1 s; TensorFlow is never imported. Only the fields the delegate emulation needs are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ai_edge_litert import schema_py_generated as fb

_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}


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
    options: dict[str, float] = field(default_factory=dict)  # only the fields read below


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


def _options(op: fb.Operator) -> dict[str, float]:
    """Builtin options the emulation cares about (softmax beta)."""
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if op.BuiltinOptionsType() == fb.BuiltinOptions.SoftmaxOptions:
        opts = fb.SoftmaxOptions()
        opts.Init(table.Bytes, table.Pos)
        return {"beta": float(opts.Beta())}
    return {}


def _quantization(tensor: fb.Tensor) -> tuple[float | None, int]:
    """Per-tensor scale and zero point (the first channel's for per-axis tensors)."""
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None, 0
    zero = int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0
    return float(q.Scale(0)), zero


def _is_const(model: fb.Model, tensor: fb.Tensor) -> bool:
    index = tensor.Buffer()
    if index <= 0 or index >= model.BuffersLength():
        return False
    buf = model.Buffers(index)
    return buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)


def read_graph(data: bytes) -> Graph:
    """Parse subgraph 0 of a TFLite model. Raises :class:`GraphError` on anything else."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise GraphError("not a TFLite flatbuffer (missing TFL3 identifier)")
    try:
        model = fb.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise GraphError("model has no subgraph")
        sub = model.Subgraphs(0)
        tensors = []
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            name = (t.Name() or b"").decode("utf-8", "replace")
            scale, zero_point = _quantization(t)
            tensors.append(
                TensorInfo(
                    i,
                    name,
                    shape,
                    _TYPE_NAMES.get(t.Type(), str(t.Type())),
                    _is_const(model, t),
                    scale,
                    zero_point,
                )
            )
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            custom = code.CustomCode()
            if builtin == fb.BuiltinOperator.CUSTOM and custom:
                codes.append((custom.decode("utf-8", "replace"), int(code.Version()), True))
            else:
                codes.append(
                    (_OP_NAMES.get(builtin, f"BUILTIN_{builtin}"), int(code.Version()), False)
                )
        ops = []
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            name, version, custom = codes[op.OpcodeIndex()]
            ins = tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else ()
            outs = tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            ops.append(OpInfo(i, name, version, ins, outs, custom, _options(op)))
        graph_in = tuple(int(x) for x in sub.InputsAsNumpy()) if sub.InputsLength() else ()
        graph_out = tuple(int(x) for x in sub.OutputsAsNumpy()) if sub.OutputsLength() else ()
    except GraphError:
        raise
    except Exception as exc:  # a corrupt flatbuffer fails in many ways; translate them all
        raise GraphError(f"cannot read the model graph: {exc}") from exc
    return Graph(tuple(tensors), tuple(ops), graph_in, graph_out)
