"""The TFLite GPU delegate's op table: which builtin ops it takes, under which constraints.

One table for both GPU verdicts of the harness: the static prediction for a converted model
(:mod:`harness.convert.gpu`) and the virtual phone's emulated delegate
(:mod:`harness.virtual.benchmark_model.gpu_emulation`), so the two can never disagree about an op.
Entries follow the delegate's op parsers (TFLite ``delegates/gpu/common/model_builder.cc``,
``tools/versioning/gpu_compatibility.cc``) and the constraints that matter for segmentation
heads (FACTS.md §2).

Delegates differ by release, so what the table says about an op is a :class:`Level`:

* no finding: every delegate the harness targets takes the op;
* ``caveat``: taken, with a risk worth knowing (EXP/LOG, hybrid convolutions, ...);
* ``recent``: parsed only by recent delegates (LiteRT), usually with type limits; phone-era
  delegates run it on the CPU. The static verdict warns; the virtual phone, which emulates a
  phone-era delegate, runs it on the CPU;
* ``cpu``: no targeted delegate takes it (any op not in the table, ARG_MAX, a violated
  constraint).

Checks read either side's graph objects (:class:`GraphLike`: the reader's
:class:`~harness.tflite.model.TfliteModel` or the virtual phone's ``Graph``). A
:class:`Finding` carries a sentence for people (the static verdict's reason) and, for a
rejection, the delegate's own words (what its log prints after ``OP: ``). Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "GPU_OPS",
    "LAYOUT_OPS",
    "NOT_SUPPORTED",
    "TYPE_MISMATCH",
    "Finding",
    "GpuOp",
    "Level",
    "findings",
    "runtime_types",
]

# The delegate's log texts (model_builder.cc) for an op without a parser and for a supported
# op whose runtime tensors it cannot hold.
NOT_SUPPORTED = "Operation is not supported."
TYPE_MISMATCH = "OP is supported, but tensor type/shape isn't compatible."

_FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16"})
_QUANT_TYPES = frozenset({"INT8", "UINT8"})  # with --gpu_experimental_enable_quant (default on)
_MAX_RANK = 4  # GPU tensors are BHWC: a tensor of rank >= 5 is refused for any op


class TensorLike(Protocol):
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> str: ...  # either spelling: "float32" (reader) or "FLOAT32" (virtual)
    @property
    def is_const(self) -> bool: ...
    @property
    def value(self) -> tuple[float, ...] | None: ...


class OpLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> tuple[int, ...]: ...
    @property
    def outputs(self) -> tuple[int, ...]: ...
    @property
    def custom(self) -> bool: ...
    @property
    def options(self) -> Mapping[str, Any]: ...


class GraphLike(Protocol):
    @property
    def tensors(self) -> Sequence[TensorLike]: ...
    def producer(self, tensor: int) -> OpLike | None: ...


class Level(StrEnum):
    """How far a finding goes, most severe first."""

    CPU = "cpu"  # no targeted delegate takes the op: it runs on the CPU, splitting the graph
    RECENT = "recent"  # only recent delegates take it; phone-era ones run it on the CPU
    CAVEAT = "caveat"  # delegated, with a risk worth knowing


@dataclass(frozen=True)
class Finding:
    level: Level
    why: str  # for people: the static verdict's reason
    log: str = NOT_SUPPORTED  # the delegate's words after "OP: " when it refuses the op

    @property
    def refuses(self) -> bool:
        """True if a phone-era delegate leaves the op to the CPU."""
        return self.level is not Level.CAVEAT


Check = Callable[[OpLike, GraphLike], Iterator[Finding]]


@dataclass(frozen=True)
class GpuOp:
    """One op of the table: ``level``/``note`` apply to every use of the op (``None``: taken
    by every targeted delegate), ``checks`` look at this use (options, tensors, producers)."""

    level: Level | None = None
    note: str = ""
    checks: tuple[Check, ...] = ()


def runtime_types(enable_quant: bool = True) -> frozenset[str]:
    """Types the delegate accepts for non-constant tensors (``IsAllAllowedTensors``)."""
    return _FLOAT_TYPES | (_QUANT_TYPES if enable_quant else frozenset())


def findings(
    op: OpLike, graph: GraphLike, *, types: Collection[str] | None = None
) -> tuple[Finding, ...]:
    """What the table says about ``op`` in ``graph``, in the order the delegate checks (op
    parser, op constraints, runtime tensors); empty if every targeted delegate takes it.

    ``types``: the runtime tensor types to require (upper-case schema names, see
    :func:`runtime_types`); ``None`` checks ranks only, as a static verdict that cannot know the
    delegate's flags does.
    """
    entry = GPU_OPS.get(op.name)
    if entry is None:
        kind = "custom op" if op.custom else "op"
        return (Finding(Level.CPU, f"{kind} {op.name} is not supported by the GPU delegate"),)
    found = [Finding(entry.level, entry.note)] if entry.level is not None else []
    for check in entry.checks:
        found.extend(check(op, graph))
    tensors = _runtime_tensors(op, graph, types)
    if tensors is not None:
        found.append(tensors)
    return tuple(found)


def _tensor(graph: GraphLike, index: int) -> TensorLike | None:
    return graph.tensors[index] if 0 <= index < len(graph.tensors) else None


def _dtype(tensor: TensorLike) -> str:
    return tensor.dtype.upper()


def _runtime_tensors(op: OpLike, graph: GraphLike, types: Collection[str] | None) -> Finding | None:
    """The first non-constant input or output the delegate cannot hold (rank, type)."""
    for index in (*op.inputs, *op.outputs):
        tensor = _tensor(graph, index)
        if tensor is None or tensor.is_const:
            continue
        rank = len(tensor.shape)
        if rank > _MAX_RANK:
            why = f"{op.name} on a rank-{rank} tensor (GPU tensors are at most 4-D)"
            return Finding(Level.CPU, why, TYPE_MISMATCH)
        if types is not None and _dtype(tensor) not in types:
            why = (
                f"{op.name} on a {tensor.dtype} tensor: the GPU delegate holds float tensors "
                "(8-bit ones with --gpu_experimental_enable_quant)"
            )
            return Finding(Level.CPU, why, TYPE_MISMATCH)
    return None


# -- per-op constraints --------------------------------------------------------------------------
def _softmax(op: OpLike, graph: GraphLike) -> Iterator[Finding]:
    beta = float(op.options.get("beta", 1.0))
    if beta != 1.0:
        why = f"SOFTMAX beta={beta:g}: the GPU delegate supports only beta == 1"
        yield Finding(Level.CPU, why, "Softmax.beta != 1 is not supported.")
    if not op.inputs:
        yield Finding(
            Level.CPU,
            "SOFTMAX without input",
            "Expected 1 input tensor(s), but node has 0 runtime input(s).",
        )
        return
    src = graph.producer(op.inputs[0])
    if src is not None and src.name == "TRANSPOSE":
        perm = _perm(src, graph)
        if perm is None or perm[-1] != len(perm) - 1:
            yield Finding(
                Level.CAVEAT,
                f"SOFTMAX over a non-channel axis (input transposed, perm={perm}): the GPU "
                "delegate only has a channel softmax, so this runs between TRANSPOSEs",
            )
    x = _tensor(graph, op.inputs[0])
    if x is not None and len(x.shape) == 4 and x.shape[0] != 1:
        yield Finding(
            Level.CAVEAT,
            f"SOFTMAX with batch {x.shape[0]}: the delegate's softmax checks only beta, but "
            "GPU delegates are built for batch 1",
        )


def _perm(op: OpLike, graph: GraphLike) -> list[int] | None:
    if len(op.inputs) < 2:
        return None
    t = _tensor(graph, op.inputs[1])
    return [int(v) for v in t.value] if t is not None and t.value is not None else None


def _conv_like(op: OpLike, graph: GraphLike) -> Iterator[Finding]:
    if len(op.inputs) < 2:
        return
    x, w = _tensor(graph, op.inputs[0]), _tensor(graph, op.inputs[1])
    if x is not None and w is not None and _dtype(x) == "FLOAT32" and _dtype(w) == "INT8":
        yield Finding(
            Level.CAVEAT,
            f"{op.name} is a dynamic-range (hybrid) kernel: int8 weights, float activations; "
            "the GPU delegate runs it only by dequantizing the weights (quantized-model "
            "support, --gpu_experimental_enable_quant), otherwise on CPU",
        )


# -- the table -----------------------------------------------------------------------------------
_EXP_LOG = (
    "EXP/LOG: supported by current GPU delegates, but old OpenGL delegates rejected them "
    "(FACTS.md §2); in FP16, exp overflows past ~11.09"
)


def _recent(name: str, limits: str) -> GpuOp:
    return GpuOp(
        Level.RECENT,
        f"{name} is delegated only by recent GPU delegates ({limits}); older ones run it on CPU",
    )


# Ops every targeted delegate parses, with no constraint worth modelling here (the delegate's
# own shape checks still apply), plus the MediaPipe custom ops it implements.
_PLAIN = [
    "ABS",
    "ADD",
    "AVERAGE_POOL_2D",
    "BATCH_MATMUL",
    "CONCATENATION",
    "COS",
    "DENSIFY",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "DIV",
    "ELU",
    "FLOOR",
    "FLOOR_DIV",
    "FLOOR_MOD",
    "GATHER",
    "HARD_SWISH",
    "LEAKY_RELU",
    "LOGISTIC",
    "LSTM",
    "MAX_POOL_2D",
    "MAXIMUM",
    "MEAN",
    "MINIMUM",
    "MIRROR_PAD",
    "MUL",
    "NEG",
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
]
_COMPARE = ["EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "LOGICAL_AND"]

GPU_OPS: dict[str, GpuOp] = {
    **{name: GpuOp() for name in _PLAIN},
    "CONV_2D": GpuOp(checks=(_conv_like,)),
    "DEPTHWISE_CONV_2D": GpuOp(checks=(_conv_like,)),
    "FULLY_CONNECTED": GpuOp(checks=(_conv_like,)),
    "SOFTMAX": GpuOp(checks=(_softmax,)),
    "EXP": GpuOp(Level.CAVEAT, _EXP_LOG),
    "LOG": GpuOp(Level.CAVEAT, _EXP_LOG),
    "CAST": GpuOp(
        Level.RECENT,
        "CAST is delegated only by recent GPU delegates (and not to uint8 on all of them); "
        "older ones run it on CPU",
    ),
    **{
        name: _recent(name, "bool output; mid-era ones only when a CAST to float follows")
        for name in _COMPARE
    },
    "CUMSUM": _recent("CUMSUM", "float data, constant int32 axis"),
    "ONE_HOT": _recent("ONE_HOT", "int32 indices, constant scalar on/off values"),
    "SELECT_V2": _recent("SELECT_V2", "float or bool condition, float values"),
    "ARG_MAX": GpuOp(
        Level.CPU,
        "ARG_MAX is not a GPU-delegate op on the runtimes phones ship (recent LiteRT "
        "compatibility checks may accept it): expect the head to run on CPU, splitting the graph",
    ),
}

# Ops that only move data (delegated or not): rounding their output to FP16 equals running them
# on FP16 input, so the virtual phone rounds them when a GPU op feeds them.
LAYOUT_OPS = frozenset(
    [
        "RESHAPE",
        "SQUEEZE",
        "EXPAND_DIMS",
        "TRANSPOSE",
        "CONCATENATION",
        "SLICE",
        "STRIDED_SLICE",
        "GATHER",
        "PACK",
        "UNPACK",
        "SPLIT",
        "SPLIT_V",
        "PAD",
        "PADV2",
        "MIRROR_PAD",
        "DEPTH_TO_SPACE",
        "SPACE_TO_DEPTH",
        "RESIZE_NEAREST_NEIGHBOR",
        "TILE",
    ]
)
