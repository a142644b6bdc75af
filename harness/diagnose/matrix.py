"""The matrix: one verdict per (head, delegate) cell, from a bench run's stored cells.

Values are judged against the desktop reference of the same variant (the bench's signature:
NaN/Inf, constant, inverted, sum != 1, wrong); a cell whose values are right but whose graph
was split between GPU and CPU is ``partial`` (and the ops that fell back are listed); a delegate
that could not start is ``delegate-failed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.runner import parse_delegate
from harness.store import CellRecord

__all__ = ["CORRECT", "VERDICTS", "Cell", "classify", "delegate_label", "is_gpu"]

VERDICTS: dict[str, str] = {
    "ok": "ok",
    "partial": "partial delegation",
    "wrong": "wrong values",
    "nan": "NaN/Inf",
    "constant": "constant output",
    "inverted": "inverted mask",
    "sum!=1": "sum != 1",
    "delegate-failed": "delegate failed",
    "failed": "failed",
}
CORRECT = ("ok", "partial")

_DELEGATE_LABELS = {
    "cpu": "CPU",
    "cpu1": "CPU (1 thread)",
    "gpu": "GPU FP16",
    "gpu-fp32": "GPU FP32",
    "gpu-cl": "GPU FP16 (OpenCL)",
    "gpu-gl": "GPU FP16 (OpenGL)",
    "nnapi": "NNAPI",
}


def delegate_label(delegate: str) -> str:
    return _DELEGATE_LABELS.get(delegate, delegate)


@dataclass(frozen=True)
class Cell:
    serial: str
    variant: str
    head: str
    delegate: str
    verdict: str  # a key of VERDICTS
    reason: str = ""  # why a cell failed (one line from the bench)
    latency_ms: float | None = None
    iou: float | None = None  # mask IoU vs the desktop reference of the same variant
    iou_gt: float | None = None  # vs the eval set's ground truth
    max_abs: float | None = None
    nan: int = 0
    sum_to_one_err: float | None = None
    delegation: str = "none"  # none | full | partial | not_applied | failed
    fallback_ops: list[str] = field(default_factory=list)
    gpu_backend: str | None = None
    cl_to_gl_fallback: bool = False
    worst: list[int] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.verdict in CORRECT

    @property
    def values_wrong(self) -> bool:
        return self.verdict not in CORRECT and self.verdict not in ("delegate-failed", "failed")

    @property
    def label(self) -> str:
        return VERDICTS.get(self.verdict, self.verdict)

    @property
    def config(self) -> str:
        """``sigmoid head on GPU FP16``."""
        return f"{self.head} head on {delegate_label(self.delegate)}"

    @property
    def precision(self) -> str:
        try:
            return parse_delegate(self.delegate).precision
        except Exception:  # an unknown delegate name in an old store
            return "fp32"

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(label=self.label, correct=self.correct, config=self.config)
        return data


_CAUSES = ("TfLiteGpuDelegate Init:", "dlopen failed", "failed to prepare", "Failed to apply")


def _cause(cell: CellRecord) -> str:
    """The line of a failed cell's log that says why the delegate did not start."""
    for marker in _CAUSES:
        for line in (cell.log or "").splitlines():
            if marker in line:
                return "delegate failed: " + line.split("ERROR: ", 1)[-1].strip()
    return cell.reason


def classify(cell: CellRecord, head: str, raw_nonfinite: int | None = None) -> Cell:
    """The verdict of one stored bench cell. ``raw_nonfinite`` counts NaN/Inf over the whole
    output tensor from the stored raw outputs (the bench counts every channel too; this also
    covers cells stored before it did, whose signature a NaN background made ``sum!=1``)."""
    base = dict(serial=cell.serial, variant=cell.variant_id, head=head, delegate=cell.delegate)
    if not cell.ok:
        failed = cell.reason.startswith("delegate failed")
        return Cell(
            **base,
            verdict="delegate-failed" if failed else "failed",
            reason=_cause(cell) if failed else cell.reason,
            delegation="failed" if failed else "none",
        )
    ref = (cell.accuracy or {}).get("vs_reference") or {}
    gt = (cell.accuracy or {}).get("vs_gt") or {}
    dele = cell.delegation or {}
    signature = (cell.accuracy or {}).get("signature", "ok")
    fallback = [f"{op}: {why}" if why else op for op, why in dele.get("unsupported_ops", [])]
    verdict = signature
    nan = int(ref.get("nan", 0) or 0) + int(ref.get("inf", 0) or 0)
    if raw_nonfinite:
        verdict, nan = "nan", max(nan, raw_nonfinite)
    is_accel = cell.delegate not in ("cpu", "cpu1")
    if signature == "ok" and is_accel and dele.get("verdict") in ("partial", "not_applied"):
        verdict = "partial"
    return Cell(
        **base,
        verdict=verdict,
        latency_ms=(cell.latency or {}).get("avg_ms"),
        iou=ref.get("iou"),
        iou_gt=gt.get("iou"),
        max_abs=ref.get("max_abs"),
        nan=nan,
        sum_to_one_err=ref.get("sum_to_one_err"),
        delegation=str(dele.get("verdict", "none")),
        fallback_ops=fallback,
        gpu_backend=dele.get("gpu_backend"),
        cl_to_gl_fallback=bool(dele.get("cl_to_gl_fallback")),
        worst=list(ref.get("worst", [])),
    )


def is_gpu(delegate: str) -> bool:
    try:
        return parse_delegate(delegate).is_gpu
    except Exception:
        return False
