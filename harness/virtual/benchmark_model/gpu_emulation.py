"""The virtual phone's GPU delegate: which ops it takes, and what FP16 does to the outputs.

Two tables, both keyed by op type so behaviour is data (docs/virtual-phone.md):

* :data:`harness.tflite.gpu_ops.GPU_OPS` — the ops the GPU delegate accepts, with their
  constraints (SOFTMAX only with ``beta == 1``; tensors of rank <= 4; float or, with
  ``--gpu_experimental_enable_quant``, 8-bit runtime tensors), shared with the static verdict
  of ``harness.convert.gpu``. The emulated delegate is a phone-era one: ops only recent
  delegates take (CAST, comparisons, ...) run on the CPU like every op not in the table, and
  are reported as ``OP: Operation is not supported.``, like the real delegate.
* :data:`HOOKS` — numeric recomputations. The model runs once on LiteRT (float32, host CPU);
  afterwards every model output produced by a hooked op (SOFTMAX, LOGISTIC, TANH, EXP, ARG_MAX,
  ARG_MIN) is recomputed from that op's preserved input tensors, in float16 arithmetic when the
  op sits on the emulated GPU with precision loss allowed, and other float outputs of GPU ops are
  rounded to float16. This works wherever the op sits in the graph, so a bisection tool that
  exposes intermediate tensors as extra outputs sees the effect at the op that causes it.

:class:`Emulation` also carries the phone's GPU delegate *generation*
(:mod:`harness.tflite.gpu_delegates`): where the generation's SOFTMAX kernel departs from a plain
softmax (the old GL and CL kernels compute ``exp(x)`` without subtracting the max) the kernel's
own arithmetic replaces the plain hook (:mod:`.gpu_kernels`), on the GPU only, and its values
flow on through the rest of the graph (:mod:`.tail_model`). :data:`FAULTS` holds what is not a
kernel's arithmetic: a missing piece of the GPU stack (``opencl-missing``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.tflite.gpu_delegates import DEFAULT_GENERATION
from harness.tflite.gpu_ops import LAYOUT_OPS, findings, runtime_types
from harness.tflite.gpu_ops import NOT_SUPPORTED as NOT_SUPPORTED  # the delegate's log texts
from harness.tflite.gpu_ops import TYPE_MISMATCH as TYPE_MISMATCH
from harness.virtual.benchmark_model.gpu_kernels import softmax_hook
from harness.virtual.benchmark_model.tflite_graph import Graph, OpInfo

Hook = Callable[[Sequence[np.ndarray], OpInfo, type], np.ndarray]


def gpu_support(op: OpInfo, graph: Graph, *, enable_quant: bool = True) -> str | None:
    """``None`` if the emulated GPU delegate takes ``op``, else the reason it logs.

    The emulated delegate is a phone-era one: ops the shared table marks ``recent`` stay on the
    CPU, caveats do not matter, runtime tensors must be float (or 8-bit with ``enable_quant``).
    """
    for finding in findings(op, graph, types=runtime_types(enable_quant)):
        if finding.refuses:
            return finding.log
    return None


@dataclass(frozen=True)
class GpuPlan:
    """What the emulated delegate does with subgraph 0 (like ``GetOpsToReplace``)."""

    total: int
    supported: frozenset[int]
    delegated: tuple[int, ...]  # nodes of the delegated partition(s)
    partitions: int  # node subsets after replacement, delegated and CPU ones together
    unsupported: tuple[str, ...]  # sorted unique "OP: reason" lines

    @property
    def full(self) -> bool:
        return self.total > 0 and len(self.delegated) == self.total


def plan_gpu(graph: Graph, *, enable_quant: bool = True, max_partitions: int = 1) -> GpuPlan:
    """Supported nodes are grouped into runs of consecutive nodes (execution order); the largest
    ``max_partitions`` runs are delegated, as the GPU delegate's default of one partition does."""
    reasons: set[str] = set()
    supported: set[int] = set()
    for op in graph.ops:
        reason = gpu_support(op, graph, enable_quant=enable_quant)
        if reason is None:
            supported.add(op.index)
        else:
            reasons.add(f"{op.op}: {reason}")
    runs: list[list[int]] = []
    for op in graph.ops:
        if op.index in supported:
            if runs and runs[-1][-1] == op.index - 1:
                runs[-1].append(op.index)
            else:
                runs.append([op.index])
    keep = sorted(runs, key=len, reverse=True)[: max(1, max_partitions)]
    delegated = tuple(sorted(i for run in keep for i in run))
    chosen = set(delegated)
    partitions, previous = 0, None
    for op in graph.ops:
        state = op.index in chosen
        if state != previous:
            partitions, previous = partitions + 1, state
    if not delegated:
        partitions = 0
    return GpuPlan(
        len(graph.ops), frozenset(supported), delegated, partitions, tuple(sorted(reasons))
    )


# -- numeric hooks ------------------------------------------------------------------------------
def _hook_softmax(ins: Sequence[np.ndarray], op: OpInfo, dt: type) -> np.ndarray:
    x = ins[0].astype(dt)
    beta = dt(op.options.get("beta", 1.0))
    e = np.exp((x - x.max(axis=-1, keepdims=True)) * beta)
    return e / e.sum(axis=-1, keepdims=True, dtype=dt)


def _hook_logistic(ins: Sequence[np.ndarray], op: OpInfo, dt: type) -> np.ndarray:
    x = ins[0].astype(dt)
    return dt(1) / (dt(1) + np.exp(-x))


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Hook:
    return lambda ins, op, dt: fn(ins[0].astype(dt))


def _reduce_index(fn: Callable[..., np.ndarray]) -> Hook:
    def hook(ins: Sequence[np.ndarray], op: OpInfo, dt: type) -> np.ndarray:
        axis = int(np.asarray(ins[1]).ravel()[0])
        return fn(ins[0].astype(dt), axis=axis)

    return hook


HOOKS: dict[str, Hook] = {
    "SOFTMAX": _hook_softmax,
    "LOGISTIC": _hook_logistic,
    "TANH": _unary(np.tanh),
    "EXP": _unary(np.exp),
    "ARG_MAX": _reduce_index(np.argmax),
    "ARG_MIN": _reduce_index(np.argmin),
}


@dataclass(frozen=True)
class Fault:
    """A missing piece of the phone's GPU stack (not a kernel's arithmetic: that follows the
    delegate generation, :mod:`.gpu_kernels`)."""

    name: str
    description: str = ""
    removes_backends: tuple[str, ...] = ()


FP16_MAX = 65504.0
FP16_EXP_LIMIT = math.log(FP16_MAX)  # ~11.09: exp(x) overflows float16 above this

FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "opencl-missing",
            description="no libOpenCL.so: the GPU delegate falls back to OpenGL; "
            "--gpu_backend=cl fails",
            removes_backends=("cl",),
        ),
    )
}
FAULT_NAMES: tuple[str, ...] = tuple(sorted(FAULTS))
# Faults of earlier versions that no kernel source supports (docs/virtual-phone.md): refused with
# the reason, so an old command line fails clearly instead of silently meaning something else.
RETIRED_FAULTS: dict[str, str] = {
    "softmax-fp16-overflow": "it is now a consequence of the GPU delegate generation: "
    "--delegate gl-2019 (the default on SM-G973F) overflows at FP16 on a Mali GPU",
    "softmax-unmasked-padding": "no softmax kernel version leaves padding lanes in the sum "
    "(FACTS.md §2); the padded-output-lane bug (PR 108244) never reaches a model output",
    "fp16-reduction-overflow": "the delegate's reduce kernel accumulates in float; the "
    "documented overflow (LiteRT 9249) is on the ML Drift backend, not emulated",
}


def active_faults(names: Sequence[str], registry: Mapping[str, Fault] | None = None) -> list[Fault]:
    """The registry entries enabled by fault ``names``."""
    table = FAULTS if registry is None else registry
    return [f for key, f in table.items() if key in set(names)]


def removed_backends(names: Sequence[str]) -> set[str]:
    """GPU backends the active faults take away (``opencl-missing`` removes ``cl``)."""
    return {b for f in active_faults(names) for b in f.removes_backends}


def resolve_hook(
    op: str,
    *,
    backend: str,
    precision: str = "fp16",
    generation: str = DEFAULT_GENERATION,
    mediump_bits: int | None = None,
) -> Hook | None:
    """The hook for ``op`` on the emulated GPU: the generation's kernel where it departs from a
    plain softmax (no max subtraction), else the plain numeric hook."""
    if op == "SOFTMAX":
        kernel = softmax_hook(generation, backend, mediump_bits)
        if kernel is not None:
            return kernel
    return HOOKS.get(op)


def _dequantize(value: np.ndarray, info) -> np.ndarray:
    """A quantized tensor's real values (hooks compute on reals, as the GPU does)."""
    if not info.quantized or value.dtype.kind not in "iu":
        return value
    return (value.astype(np.float32) - info.zero_point) * np.float32(info.scale)


def _requantize(out: np.ndarray, info, dtype: np.dtype) -> np.ndarray:
    """Write a hook's real result into the output tensor's type (quantized if it is)."""
    if not info.quantized or np.dtype(dtype).kind not in "iu":
        return out.astype(dtype)
    limits = np.iinfo(dtype)
    real = np.nan_to_num(out.astype(np.float64), nan=0.0, posinf=limits.max, neginf=limits.min)
    q = np.round(real / info.scale) + info.zero_point
    return np.clip(q, limits.min, limits.max).astype(dtype)


def _round16(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind != "f":
        return a
    with np.errstate(over="ignore"):
        return a.astype(np.float16).astype(a.dtype)


@dataclass(frozen=True)
class Emulation:
    """How the emulated accelerator changes a float32 CPU run's outputs."""

    precision: str  # "fp16" (precision loss allowed) or "fp32"
    backend: str  # "cl", "gl" or "nnapi"
    delegated: frozenset[int]
    generation: str = DEFAULT_GENERATION  # the GPU delegate's kernels (tflite/gpu_delegates.py)
    mediump_bits: int | None = None  # 16 on Mali (the profile's [gpu] mediump_bits)

    def _on_accel(self, op: OpInfo | None) -> bool:
        return op is not None and op.index in self.delegated

    def _fed_by_accel(self, graph: Graph, op: OpInfo) -> bool:
        return any(i >= 0 and self._on_accel(graph.producer(i)) for i in op.inputs)

    def _active_hook(self, graph: Graph, op: OpInfo | None) -> Hook | None:
        """The hook that changes ``op``'s output here, or None if the CPU result stands."""
        if op is None:
            return None
        plain = HOOKS.get(op.op)
        hook = self._kernel(op.op)
        if hook is not None and hook is not plain and self._on_accel(op):
            return hook  # the generation's own kernel: only where the GPU runs the op
        fp16_touched = self._on_accel(op) or self._fed_by_accel(graph, op)
        return plain if self.precision == "fp16" and fp16_touched else None

    def _kernel(self, op: str) -> Hook | None:
        return resolve_hook(
            op,
            backend=self.backend,
            precision=self.precision,
            generation=self.generation,
            mediump_bits=self.mediump_bits,
        )

    def faulted_ops(self, graph: Graph) -> list[OpInfo]:
        """Ops the emulated GPU runs with a kernel that departs from the plain recomputation
        (a softmax without max subtraction), in execution order."""
        out = []
        for op in graph.ops:
            if not self._on_accel(op):
                continue
            hook = self._kernel(op.op)
            if hook is not None and hook is not HOOKS.get(op.op):
                out.append(op)
        return out

    def needs_intermediates(self, graph: Graph) -> bool:
        """True if some output must be recomputed from tensors the interpreter frees."""
        if self.faulted_ops(graph):
            return True  # the faulted values flow on through the rest of the graph
        for tensor in graph.outputs:
            op = graph.producer(tensor)
            if self._active_hook(graph, op) is not None and any(
                i >= 0 and i not in graph.inputs and not graph.tensors[i].is_const
                for i in op.inputs
            ):
                return True
        return False

    def outputs(self, graph: Graph, get: Callable[[int], np.ndarray]) -> list[np.ndarray]:
        """Emulated values of the model outputs, in output order."""
        result = []
        with np.errstate(all="ignore"):
            for tensor in graph.outputs:
                result.append(self._output(graph, tensor, np.asarray(get(tensor)), get))
        return result

    def value(self, graph: Graph, tensor: int, get: Callable[[int], np.ndarray]) -> np.ndarray:
        """The emulated value of one tensor (its producer's hook or rounding applied)."""
        with np.errstate(all="ignore"):
            return self._output(graph, tensor, np.asarray(get(tensor)), get)

    def _output(self, graph: Graph, tensor: int, cpu: np.ndarray, get) -> np.ndarray:
        fp16 = self.precision == "fp16"
        op = graph.producer(tensor)
        hook = self._active_hook(graph, op)
        on_accel = self._on_accel(op)
        if hook is not None:
            inputs = []
            for i in op.inputs:
                if i < 0:
                    continue
                value = np.asarray(get(i))
                from_accel = on_accel or self._on_accel(graph.producer(i))
                value = _dequantize(value, graph.tensors[i])
                inputs.append(_round16(value) if fp16 and from_accel else value)
            dt = np.float16 if fp16 and on_accel else np.float32
            out = np.asarray(hook(inputs, op, dt)).reshape(cpu.shape)
            return _requantize(out, graph.tensors[tensor], cpu.dtype)
        if fp16 and (
            on_accel or (op is not None and op.op in LAYOUT_OPS and self._fed_by_accel(graph, op))
        ):
            return _round16(cpu)
        return cpu.copy()
