"""The matrix: one verdict per (head, delegate) cell, from a bench run's stored cells.

The verdict is the cell's one judge (:func:`harness.cell.judge`): values vs the desktop
reference of the same variant (NaN/Inf, constant, inverted, sum != 1, wrong), ``partial`` when
the values are right but the graph was split between the delegate and the CPU (the ops that
fell back are listed), ``delegate-failed`` when the delegate could not start. Diagnose adds
only evidence: NaN/Inf counted over the stored raw outputs, and the log line that says why a
delegate failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.cell import Cell, CellOutcome, Verdict, judge
from harness.runner.flags import Delegate, delegate_label

__all__ = ["VERDICTS", "MatrixCell", "classify", "delegate_label"]

VERDICTS: dict[str, str] = {
    Verdict.CORRECT.value: "ok",
    Verdict.PARTIAL.value: "partial delegation",
    Verdict.WRONG.value: "wrong values",
    Verdict.NAN.value: "NaN/Inf",
    Verdict.CONSTANT.value: "constant output",
    Verdict.INVERTED.value: "inverted mask",
    Verdict.SUM_NOT_ONE.value: "sum != 1",
    Verdict.DELEGATE_FAILED.value: "delegate failed",
    Verdict.FAILED.value: "failed",
}


@dataclass(frozen=True, eq=False)
class MatrixCell:
    """A stored cell as diagnose's matrix shows it: the cell, its head and its judgement."""

    cell: Cell
    head: str
    outcome: CellOutcome
    nan: int = 0  # NaN + Inf in the device output (the raw outputs' count when larger)
    reason: str = ""  # why the cell failed (the delegate's own error line when there is one)
    worst: tuple[int, ...] = ()  # eval inputs worth probing, worst first

    @property
    def serial(self) -> str:
        return self.cell.serial

    @property
    def variant(self) -> str:
        return self.cell.variant_id

    @property
    def delegate(self) -> str:
        return self.cell.delegate

    @property
    def verdict(self) -> str:
        return self.outcome.verdict.value

    @property
    def correct(self) -> bool:
        return self.outcome.correct

    @property
    def values_wrong(self) -> bool:
        return self.outcome.values_wrong

    @property
    def label(self) -> str:
        return VERDICTS.get(self.verdict, self.verdict)

    @property
    def config(self) -> str:
        """``sigmoid head on GPU FP16``."""
        return f"{self.head} head on {delegate_label(self.delegate)}"

    @property
    def precision(self) -> str:
        known = Delegate.lookup(self.delegate)
        return known.precision if known else "fp32"  # an unknown name in an old store

    @property
    def latency_ms(self) -> float | None:
        return self.cell.latency.avg_ms

    @property
    def iou(self) -> float | None:
        return self.cell.accuracy.reference.iou

    @property
    def iou_gt(self) -> float | None:
        return self.cell.accuracy.gt.iou

    @property
    def fallback_ops(self) -> list[str]:
        return [f"{op}: {why}" if why else op for op, why in self.cell.delegation.ops]

    @property
    def delegation(self) -> str:
        """none | full | partial | not_applied | failed."""
        if not self.outcome.measured:
            return "failed" if self.outcome.verdict is Verdict.DELEGATE_FAILED else "none"
        return self.cell.delegation.verdict or "none"

    def to_dict(self) -> dict:
        c, measured = self.cell, self.outcome.measured
        ref = c.accuracy.reference
        return {
            "serial": c.serial,
            "server": c.server,
            "variant": self.variant,
            "head": self.head,
            "delegate": self.delegate,
            "verdict": self.verdict,
            "reason": self.reason,
            "latency_ms": self.latency_ms if measured else None,
            "iou": self.iou if measured else None,
            "iou_gt": c.accuracy.gt.iou if measured else None,
            "max_abs": ref.max_abs if measured else None,
            "nan": self.nan,
            "sum_to_one_err": ref.sum_to_one_err if measured else None,
            "delegation": self.delegation,
            "fallback_ops": self.fallback_ops if measured else [],
            "gpu_backend": c.delegation.gpu_backend if measured else None,
            "cl_to_gl_fallback": bool(c.delegation.cl_to_gl_fallback) if measured else False,
            "worst": list(self.worst),
            "label": self.label,
            "correct": self.correct,
            "config": self.config,
        }


_CAUSES = ("TfLiteGpuDelegate Init:", "dlopen failed", "failed to prepare", "Failed to apply")


def _cause(cell: Cell) -> str:
    """The line of a failed cell's log that says why the delegate did not start."""
    for marker in _CAUSES:
        for line in (cell.log or "").splitlines():
            if marker in line:
                return "delegate failed: " + line.split("ERROR: ", 1)[-1].strip()
    return cell.reason


def classify(
    cell: Cell, head: str, raw_nonfinite: int | None = None, worst: list[int] | None = None
) -> MatrixCell:
    """The matrix entry of one stored bench cell. ``raw_nonfinite`` counts NaN/Inf over the
    whole output tensor from the stored raw outputs (the bench counts every channel too; this
    also covers cells stored before it did, whose signature a NaN background made ``sum!=1``);
    ``worst``: the inputs to probe (default: the bench's worst IoU first)."""
    outcome = judge(cell, raw_nonfinite)
    if not outcome.measured:
        failed = outcome.verdict is Verdict.DELEGATE_FAILED
        return MatrixCell(cell, head, outcome, reason=_cause(cell) if failed else cell.reason)
    nan = cell.accuracy.reference.nonfinite or 0
    if raw_nonfinite:
        nan = max(nan, raw_nonfinite)
    default = list(cell.accuracy.reference.worst or ())
    return MatrixCell(cell, head, outcome, nan=nan, worst=tuple(worst or default))
