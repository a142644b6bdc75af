"""Static GPU-delegate verdict for a ``.tflite``: which ops the TFLite GPU delegate takes.

The op table (:data:`harness.tflite.gpu_ops.GPU_OPS`, shared with the virtual phone's emulated
delegate) follows the builtin ops the GPU delegate's model builder parses and the constraints
that matter for segmentation heads (FACTS.md §2). It is a static prediction for the delegates
shipped in phone-era runtimes, not a substitute for the device log: the bench still parses
``Replacing N out of M node(s)`` from ``benchmark_model``.

Status per op: ``gpu`` (delegated), ``cpu`` (rejected: the graph is split and the op runs on
CPU), ``warn`` (delegated on current delegates, with a caveat worth knowing: a ``caveat`` or a
``recent``-only op of the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.tflite.gpu_ops import GPU_OPS, Level, findings
from harness.tflite.model import OpInfo, TfliteModel

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


_STATUS = {Level.CPU: OpStatus.CPU, Level.RECENT: OpStatus.WARN, Level.CAVEAT: OpStatus.WARN}
_SEVERITY = {level: rank for rank, level in enumerate(Level)}  # CPU first


def _op_verdict(op: OpInfo, model: TfliteModel) -> OpVerdict:
    """The most severe finding of the shared op table decides (the first of its level)."""
    found = findings(op, model)
    if not found:
        return OpVerdict(op.index, op.name, OpStatus.GPU)
    worst = min(found, key=lambda f: _SEVERITY[f.level])
    return OpVerdict(op.index, op.name, _STATUS[worst.level], worst.why)


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
