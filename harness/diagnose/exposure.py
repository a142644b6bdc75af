"""Exposure: is this model, on this eval set, in reach of each documented GPU failure mode?

Measured on the desktop (LiteRT, every tensor preserved) over the whole eval set, per variant:

* ``softmax-fp16-overflow`` (FACTS.md §2): the largest input of each SOFTMAX. The old GL kernel
  (the 2019 delegate, ``gl/kernels/softmax.cc``) computes exp without max subtraction at
  mediump, 16 bits on Mali: exp overflows above ln(65504) ~ 11.09; below it nothing can. The
  old kernels overflow at any precision past ~88.72 (float32 exp), counted in ``detail``.
* ``fp16-reduction-overflow``: the largest |sum| a SUM/MEAN accumulates, vs 65504 (LiteRT issue
  9249 saw such a SUM give NaN on the ML Drift GPU backend; the TFLite delegate's
  ``common/tasks/reduce.cc`` accumulates in float, and the virtual phone does not emulate it).

(A padding-lane finding was dropped: every softmax kernel masks the padding lanes in its sum.)

It says why a fault could or could not show, so a clean GPU cell is explained, never assumed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.convert.tflite_model import TfliteModel, read_tflite
from harness.errors import ModelError

__all__ = ["FP16_EXP_LIMIT", "FP16_MAX", "Finding", "explain", "exposure"]

FP16_MAX = 65504.0
FP16_EXP_LIMIT = math.log(FP16_MAX)  # 11.09
FP32_EXP_LIMIT = math.log(3.4028234663852886e38)  # 88.72
_REDUCTIONS = ("SUM", "MEAN")


@dataclass(frozen=True)
class Finding:
    mode: str  # the failure mode (fault name on the virtual phone)
    op: str
    op_index: int
    tensor: str  # the op's output tensor name
    exposed: bool
    largest: float | None  # largest softmax input / largest |sum|
    limit: float | None
    over: int = 0  # values past the limit
    total: int = 0
    detail: dict = field(default_factory=dict)
    why: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _dequant(model: TfliteModel, index: int, a: np.ndarray) -> np.ndarray:
    q = model.tensors[index].quantization
    if q is not None and a.dtype.kind in "iu":
        return (a.astype(np.float64) - q.zero_point) * q.scale
    return a.astype(np.float64)


def _collect(path: Path, x: np.ndarray, wanted: list[int]) -> dict[int, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    from harness.convert._native import native_output_silenced

    try:
        with native_output_silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": it is
            interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
            interp.allocate_tensors()
        index = interp.get_input_details()[0]["index"]
        got: dict[int, list[np.ndarray]] = {t: [] for t in wanted}
        for sample in x:
            interp.set_tensor(index, sample[None])
            interp.invoke()
            for t in wanted:
                got[t].append(np.array(interp.get_tensor(t)))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"LiteRT cannot run {path} for the exposure check: {first}") from exc
    return {t: np.stack(v) for t, v in got.items()}


def _softmax_findings(model: TfliteModel, op, z: np.ndarray) -> list[Finding]:
    out_name = model.tensors[op.outputs[0]].name
    largest = float(np.nanmax(z)) if z.size else 0.0
    over = int(np.count_nonzero(z > FP16_EXP_LIMIT))
    exposed = over > 0
    compare = ">" if exposed else "<="
    why = f"largest softmax input {largest:.2f} {compare} ln(65504) = {FP16_EXP_LIMIT:.2f}" + (
        f" on {over} of {z.size} values: exp without max subtraction overflows FP16 there"
        if exposed
        else ": exp cannot overflow FP16 on this eval set (not exposed)"
    )
    findings = [
        Finding(
            "softmax-fp16-overflow",
            op.name,
            op.index,
            out_name,
            exposed,
            largest,
            FP16_EXP_LIMIT,
            over,
            int(z.size),
            {
                "smallest": float(np.nanmin(z)) if z.size else 0.0,
                "over_fp32_exp": int(np.count_nonzero(z > FP32_EXP_LIMIT)),
                "fp32_exp_limit": FP32_EXP_LIMIT,
            },
            why,
        )
    ]
    return findings


def _reduction_finding(model: TfliteModel, op, x: np.ndarray) -> Finding:
    axes_tensor = model.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
    axes_value = axes_tensor.value if axes_tensor is not None else None
    sample_ndim = x.ndim - 1  # x is [N, *tensor shape]
    if axes_value is None:
        axes = tuple(range(1, x.ndim))
    else:
        axes = tuple(sorted({int(a) % sample_ndim + 1 for a in axes_value}))
    sums = np.abs(x.sum(axis=axes)) if x.size else np.zeros(1)
    largest = float(np.nanmax(sums))
    exposed = largest > FP16_MAX
    why = f"largest |sum| accumulated by {op.name} {largest:.4g} " + (
        "> 65504: a float16 accumulator overflows" if exposed else "<= 65504: fits float16"
    )
    return Finding(
        "fp16-reduction-overflow",
        op.name,
        op.index,
        model.tensors[op.outputs[0]].name,
        exposed,
        largest,
        FP16_MAX,
        int(np.count_nonzero(sums > FP16_MAX)),
        int(sums.size),
        {"axes": [a - 1 for a in axes]},
        why,
    )


def exposure(path: Path, x: np.ndarray) -> list[Finding]:
    """Findings for every SOFTMAX, SUM and MEAN of ``path`` on preprocessed inputs ``x``."""
    model = read_tflite(path, verify=False)
    ops = [op for op in model.ops if op.name == "SOFTMAX" or op.name in _REDUCTIONS]
    if not ops:
        return []
    wanted = sorted({op.inputs[0] for op in ops})
    values = _collect(Path(path), x, wanted)
    findings: list[Finding] = []
    for op in ops:
        data = _dequant(model, op.inputs[0], values[op.inputs[0]])
        if op.name == "SOFTMAX":
            beta = float(op.options.get("beta", 1.0))
            findings += _softmax_findings(model, op, data * beta)
        else:
            findings.append(_reduction_finding(model, op, data))
    return findings


def explain(
    culprit_op: str,
    op_index: int,
    nonfinite: int,
    findings: list[Finding],
    precision: str,
    generation: str | None = None,
) -> tuple[str, str]:
    """(mode, sentence) matching a culprit op to the documented failure mode the evidence fits;
    mode is "" when none fits. ``generation``: the phone's GPU delegate generation, when known
    (virtual phones), named in the sentence with its kernel."""
    mine = {f.mode: f for f in findings if f.op_index == op_index}
    overflow = mine.get("softmax-fp16-overflow")
    if culprit_op == "SOFTMAX" and overflow:
        kernel = _kernel_text(generation)
        over32 = int(overflow.detail.get("over_fp32_exp", 0))
        if precision == "fp16" and overflow.exposed:
            return overflow.mode, (
                f"FP16 softmax overflow: the largest softmax input is {overflow.largest:.2f} > "
                f"ln(65504) = {FP16_EXP_LIMIT:.2f} on {overflow.over} of {overflow.total} values, "
                f"and this SOFTMAX gives NaN/Inf there: {kernel} (FACTS.md §2)"
            )
        if over32 and nonfinite:
            return "softmax-exp-overflow", (
                f"softmax exp overflow: {over32} softmax inputs pass ln(FLT_MAX) = "
                f"{FP32_EXP_LIMIT:.2f}, and this SOFTMAX gives NaN/Inf there: {kernel} "
                "(FACTS.md §2)"
            )
    reduction = mine.get("fp16-reduction-overflow")
    if reduction and reduction.exposed and nonfinite and precision == "fp16":
        return reduction.mode, (
            f"FP16 accumulation overflow: {reduction.why} (LiteRT issue 9249, ML Drift backend)"
        )
    return "", (
        f"{culprit_op} departs from the desktop on this delegate; no documented failure mode "
        "matches the evidence (a silent miscompute, FACTS.md §2)"
    )


def _kernel_text(generation: str | None) -> str:
    from harness.tflite.gpu_delegates import GENERATIONS

    gen = GENERATIONS.get(generation or "")
    if gen is None:
        return (
            "a GPU softmax kernel that does not subtract the max (the phone's TFLite runtime "
            "is not known here; the 2019 OpenGL delegate's kernel does this)"
        )
    old = [f"{b}: {k.name}" for b, k in gen.softmax if not k.subtracts_max]
    return (
        f"GPU delegate {gen.name}'s softmax computes exp(x) without subtracting the max "
        f"({', '.join(old) or 'no such kernel'})"
    )
