"""What to ship instead: ranked by what this run measured on this phone.

Only correct cells (values match the desktop reference; partial delegation allowed, noted) are
candidates, ranked by measured latency. When a configuration fails, the recommendation keeps
its delegate and changes the head if some head is correct there (the cheapest fix: same
accelerator, same precision); otherwise it is the fastest correct configuration. The remedies
FACTS.md §2 lists are then priced against it: the failing head at FP32, logits with the
threshold on the CPU, CPU only, and the other heads on the same delegate.
"""

from __future__ import annotations

from harness.diagnose.matrix import MatrixCell

__all__ = ["recommend"]


def _entry(
    cell: MatrixCell | None, kind: str, best: MatrixCell | None, note: str = "", missing: str = ""
) -> dict:
    if cell is None:
        return {"kind": kind, "config": None, "measured": False, "note": missing or "not measured"}
    delta = None
    if best is not None and cell.latency_ms is not None and best.latency_ms:
        delta = (cell.latency_ms - best.latency_ms) / best.latency_ms * 100
    return {
        "kind": kind,
        "config": cell.config,
        "variant": cell.variant,
        "delegate": cell.delegate,
        "verdict": cell.verdict,
        "label": cell.label,
        "correct": cell.correct,
        "latency_ms": cell.latency_ms,
        "iou": cell.iou,
        "iou_gt": cell.iou_gt,
        "delta_pct": delta,
        "measured": True,
        "note": note,
    }


def _find(cells: list[MatrixCell], head: str, delegate: str) -> MatrixCell | None:
    return next((c for c in cells if c.head == head and c.delegate == delegate), None)


def _summary(cell: MatrixCell) -> str:
    parts = []
    if cell.iou is not None:
        parts.append(f"IoU {cell.iou:.3f}")
    if cell.latency_ms is not None:
        parts.append(f"{cell.latency_ms:.2f} ms")
    text = f"{cell.config}: {', '.join(parts)}"
    if cell.verdict == "partial":
        text += f" (partial delegation: {', '.join(cell.fallback_ops) or 'CPU fallback'})"
    return text


def recommend(cells: list[MatrixCell]) -> dict:
    """The recommendation for one phone's matrix (JSON-ready)."""
    timed = [c for c in cells if c.correct and c.latency_ms is not None]
    # Fully delegated (or CPU) cells first: a partial delegation pays GPU<->CPU copies and
    # tests a different graph split; it is recommended only when nothing else is correct.
    ranking = sorted(timed, key=lambda c: (c.verdict != "ok", c.latency_ms))
    failing = [c for c in cells if c.values_wrong]
    focus = next((c for c in failing if c.delegate == "gpu"), failing[0] if failing else None)
    best = ranking[0] if ranking else None
    chosen = best
    if focus is not None:
        same = [c for c in ranking if c.delegate == focus.delegate]
        chosen = same[0] if same else best
    out: dict = {
        "recommended": _entry(chosen, "recommended", chosen) if chosen else None,
        "text": _summary(chosen) if chosen else "no configuration is correct on this phone",
        "fastest_correct": _entry(best, "fastest", chosen) if best else None,
        "instead_of": focus.to_dict() if focus else None,
        "alternatives": [],
        "ranking": [_entry(c, "ranked", chosen) for c in ranking],
    }
    if focus is None:
        out["alternatives"] = [_entry(c, "ranked", chosen) for c in ranking[1:4]]
        return out
    alts = [
        _entry(
            _find(cells, focus.head, "gpu-fp32"),
            "fp32",
            chosen,
            "precision loss off",
            "gpu-fp32 was not in --delegates",
        ),
    ]
    logits = _find(cells, "logits", focus.delegate)
    argmax = _find(cells, "argmax", focus.delegate)
    note = "+ the app's CPU threshold (not measured)"
    if argmax is not None and argmax.latency_ms is not None:
        note = f"ARG_MAX on the CPU in-graph (argmax head): {argmax.latency_ms:.2f} ms"
    no_logits = "no logits head here (--heads ...,logits; a .tflite is one head)"
    alts.append(_entry(logits, "logits+cpu-threshold", chosen, note, no_logits))
    cpu = _find(cells, focus.head, "cpu")
    alts.append(_entry(cpu, "cpu-only", chosen, missing="cpu was not in --delegates"))
    seen = {a.get("variant", "") + "@" + a.get("delegate", "") for a in alts if a["measured"]}
    for cell in cells:
        key = f"{cell.variant}@{cell.delegate}"
        other = cell.delegate == focus.delegate and cell.head != focus.head
        if other and key not in seen and cell is not chosen:
            alts.append(_entry(cell, "other-head", chosen))
    out["alternatives"] = alts
    return out
