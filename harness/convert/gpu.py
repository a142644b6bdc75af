"""Static GPU-delegate verdict for a ``.tflite``: which ops the TFLite GPU delegate takes.

The table follows the builtin ops the GPU delegate's model builder parses (TFLite
``delegates/gpu/common/model_builder.cc``, ``tools/versioning/gpu_compatibility.cc``) and the
constraints that matter for segmentation heads (FACTS.md §2). It is a static prediction for
the delegates shipped in phone-era runtimes, not a substitute for the device log: the bench
still parses ``Replacing N out of M node(s)`` from ``benchmark_model``.

Status per op: ``gpu`` (delegated), ``cpu`` (rejected: the graph is split and the op runs on
CPU), ``warn`` (delegated on current delegates, with a caveat worth knowing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.convert.tflite_model import OpInfo, TfliteModel

__all__ = ["GPU_OPS", "GpuVerdict", "OpStatus", "OpVerdict", "gpu_verdict"]


class OpStatus(StrEnum):
    GPU = "gpu"
    CPU = "cpu"
    WARN = "warn"


@dataclass(frozen=True)
class OpVerdict:
    index: int
    op: str
    status: OpStatus
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "status": str(self.status),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpVerdict:
        return cls(
            int(data["index"]),
            str(data["op"]),
            OpStatus(data["status"]),
            str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class GpuVerdict:
    """``delegation``: ``full`` (every op on GPU), ``partial`` or ``none``."""

    delegation: str
    n_ops: int
    issues: tuple[OpVerdict, ...]  # every op that is not a plain ``gpu``
    notes: tuple[str, ...] = ()  # model-level remarks (quantized I/O, ...)

    @property
    def cpu_ops(self) -> tuple[OpVerdict, ...]:
        return tuple(v for v in self.issues if v.status is OpStatus.CPU)

    @property
    def warnings(self) -> tuple[OpVerdict, ...]:
        return tuple(v for v in self.issues if v.status is OpStatus.WARN)

    def summary(self) -> str:
        cpu = self.cpu_ops
        if not cpu:
            text = f"full: all {self.n_ops} ops on GPU"
        else:
            names = ", ".join(sorted({v.op for v in cpu}))
            text = f"{self.delegation}: {len(cpu)} of {self.n_ops} ops on CPU ({names})"
        if self.warnings:
            text += f"; {len(self.warnings)} caveat(s)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "delegation": self.delegation,
            "summary": self.summary(),
            "n_ops": self.n_ops,
            "cpu_ops": len(self.cpu_ops),
            "issues": [v.to_dict() for v in self.issues],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuVerdict:
        return cls(
            delegation=str(data["delegation"]),
            n_ops=int(data["n_ops"]),
            issues=tuple(OpVerdict.from_dict(v) for v in data.get("issues", [])),
            notes=tuple(data.get("notes", [])),
        )


Rule = Callable[[OpInfo, TfliteModel], tuple[OpStatus, str]]


def _ok(_op: OpInfo, _model: TfliteModel) -> tuple[OpStatus, str]:
    return OpStatus.GPU, ""


def _warn(reason: str) -> Rule:
    return lambda _op, _model: (OpStatus.WARN, reason)


def _cpu(reason: str) -> Rule:
    return lambda _op, _model: (OpStatus.CPU, reason)


def _rank(model: TfliteModel, tensor_index: int) -> int:
    t = model.tensor(tensor_index)
    return len(t.shape) if t else 0


def _softmax(op: OpInfo, model: TfliteModel) -> tuple[OpStatus, str]:
    beta = float(op.options.get("beta", 1.0))
    if beta != 1.0:
        return OpStatus.CPU, f"SOFTMAX beta={beta:g}: the GPU delegate supports only beta == 1"
    if not op.inputs:
        return OpStatus.CPU, "SOFTMAX without input"
    rank = _rank(model, op.inputs[0])
    if rank > 4:
        return OpStatus.CPU, f"SOFTMAX on a rank-{rank} tensor (GPU tensors are at most 4-D)"
    src = model.producer(op.inputs[0])
    if src is not None and src.name == "TRANSPOSE":
        perm = _perm(src, model)
        if perm is None or perm[-1] != len(perm) - 1:
            return OpStatus.WARN, (
                f"SOFTMAX over a non-channel axis (input transposed, perm={perm}): the GPU "
                "delegate only has a channel softmax, so this runs between TRANSPOSEs"
            )
    if rank == 4:
        t = model.tensor(op.inputs[0])
        if t is not None and t.shape and t.shape[0] != 1:
            return OpStatus.CPU, "SOFTMAX with batch != 1"
    return OpStatus.GPU, ""


def _perm(op: OpInfo, model: TfliteModel) -> list[int] | None:
    if len(op.inputs) < 2:
        return None
    t = model.tensor(op.inputs[1])
    return [int(v) for v in t.value] if t is not None and t.value is not None else None


def _conv_like(op: OpInfo, model: TfliteModel) -> tuple[OpStatus, str]:
    if len(op.inputs) < 2:
        return OpStatus.GPU, ""
    x, w = model.tensor(op.inputs[0]), model.tensor(op.inputs[1])
    if x is not None and w is not None and x.dtype == "float32" and w.dtype == "int8":
        return OpStatus.WARN, (
            f"{op.name} is a dynamic-range (hybrid) kernel: int8 weights, float activations; "
            "the GPU delegate runs it only by dequantizing the weights (quantized-model "
            "support, --gpu_experimental_enable_quant), otherwise on CPU"
        )
    return OpStatus.GPU, ""


_EXP_LOG = (
    "EXP/LOG: supported by current GPU delegates, but old OpenGL delegates rejected them "
    "(FACTS.md §2); in FP16, exp overflows past ~11.09"
)

# The builtin ops the GPU delegate parses, with their constraint check.
GPU_OPS: dict[str, Rule] = {
    **dict.fromkeys(
        [
            "ABS",
            "ADD",
            "AVERAGE_POOL_2D",
            "BATCH_MATMUL",
            "CONCATENATION",
            "COS",
            "CUMSUM",
            "DENSIFY",
            "DEPTH_TO_SPACE",
            "DEQUANTIZE",
            "DIV",
            "ELU",
            "EQUAL",
            "FLOOR",
            "FLOOR_DIV",
            "FLOOR_MOD",
            "GATHER",
            "GREATER",
            "GREATER_EQUAL",
            "HARD_SWISH",
            "LEAKY_RELU",
            "LESS",
            "LESS_EQUAL",
            "LOGICAL_AND",
            "LOGISTIC",
            "LSTM",
            "MAX_POOL_2D",
            "MAXIMUM",
            "MEAN",
            "MINIMUM",
            "MIRROR_PAD",
            "MUL",
            "NEG",
            "NOT_EQUAL",
            "ONE_HOT",
            "PACK",
            "PAD",
            "PADV2",
            "POW",
            "PRELU",
            "QUANTIZE",
            "REDUCE_MAX",
            "REDUCE_MIN",
            "REDUCE_PROD",
            "RELU",
            "RELU6",
            "RELU_N1_TO_1",
            "RESHAPE",
            "RESIZE_BILINEAR",
            "RESIZE_NEAREST_NEIGHBOR",
            "RSQRT",
            "SELECT_V2",
            "SIN",
            "SLICE",
            "SPACE_TO_DEPTH",
            "SPLIT",
            "SPLIT_V",
            "SQRT",
            "SQUARE",
            "SQUARED_DIFFERENCE",
            "STRIDED_SLICE",
            "SUB",
            "SUM",
            "TANH",
            "TILE",
            "TRANSPOSE",
            "TRANSPOSE_CONV",
            "Convolution2DTransposeBias",
            "MaxPoolingWithArgmax2D",
            "MaxUnpooling2D",
            "Resampler",
        ],
        _ok,
    ),
    "CONV_2D": _conv_like,
    "DEPTHWISE_CONV_2D": _conv_like,
    "FULLY_CONNECTED": _conv_like,
    "SOFTMAX": _softmax,
    "EXP": _warn(_EXP_LOG),
    "LOG": _warn(_EXP_LOG),
    "ARG_MAX": _cpu(
        "ARG_MAX is not a GPU-delegate op on the runtimes phones ship (recent LiteRT "
        "compatibility checks may accept it): expect the head to run on CPU, splitting the graph"
    ),
    "CAST": _warn(
        "CAST is delegated only by recent GPU delegates (and not to uint8 on all of them); "
        "older ones run it on CPU"
    ),
}


def _op_verdict(op: OpInfo, model: TfliteModel) -> OpVerdict:
    rule = GPU_OPS.get(op.name)
    if rule is None:
        kind = "custom op" if op.custom else "op"
        return OpVerdict(
            op.index,
            op.name,
            OpStatus.CPU,
            f"{kind} {op.name} is not supported by the GPU delegate",
        )
    status, reason = rule(op, model)
    return OpVerdict(op.index, op.name, status, reason)


def gpu_verdict(model: TfliteModel) -> GpuVerdict:
    """Predict how the TFLite GPU delegate will take this model (subgraph 0)."""
    verdicts = [_op_verdict(op, model) for op in model.ops]
    n_cpu = sum(v.status is OpStatus.CPU for v in verdicts)
    if not verdicts or n_cpu == len(verdicts):
        delegation = "none"
    elif n_cpu:
        delegation = "partial"
    else:
        delegation = "full"
    notes: list[str] = []
    if model.subgraphs > 1:
        notes.append(f"{model.subgraphs} subgraphs: only the primary subgraph is delegated")
    io = [*model.inputs, *model.outputs]
    if any(t.dtype in ("int8", "uint8") and t.quantization for t in io):
        notes.append(
            "quantized I/O: the GPU delegate computes in float (FP16 unless "
            "--gpu_precision_loss_allowed=false) and needs --gpu_experimental_enable_quant"
        )
    if any(t.shape and t.shape[0] != 1 for t in model.inputs):
        notes.append("batch != 1 input: the GPU delegate expects batch 1")
    issues = tuple(v for v in verdicts if v.status is not OpStatus.GPU)
    return GpuVerdict(delegation, len(verdicts), issues, tuple(notes))
