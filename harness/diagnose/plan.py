"""Which variants a diagnosis runs: one per head, at one precision, built on the fly if needed.

``--model models/NAME``: the heads its ``variants.json`` has at ``--precision`` (default fp32:
the GPU's own precision is a delegate setting), or ``--heads``; heads missing from the manifest
are converted from the folder's ``model.keras`` (``harness convert`` for just those variants),
so the diagnosis compares re-expressions of the same trained model. ``--model FILE.tflite``:
that file alone (its head read from a manifest beside it or inferred from its output).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.convert.variants import (
    MANIFEST_NAME,
    Head,
    Precision,
    parse_heads,
    read_manifest,
)
from harness.errors import ModelError, UsageError

__all__ = ["DEFAULT_BUILD_HEADS", "DiagnosisPlan", "plan_model"]

# Heads built when a model folder has none yet: the failing head and the documented remedies.
DEFAULT_BUILD_HEADS = (Head.SOFTMAX, Head.SIGMOID, Head.LOGITS, Head.ARGMAX)


@dataclass(frozen=True)
class DiagnosisPlan:
    model: str  # what run_bench is given (folder or file)
    variants: str | None  # the --variants pattern for run_bench
    heads: tuple[str, ...]
    built: tuple[str, ...] = ()  # variant ids converted for this diagnosis


def _precision(text: str) -> Precision:
    try:
        return Precision(text.strip().lower())
    except ValueError:
        known = ", ".join(str(p) for p in Precision)
        raise UsageError(f"unknown precision {text!r} (known: {known})") from None


def plan_model(model: str, heads: str | None = None, precision: str = "fp32") -> DiagnosisPlan:
    path = Path(model)
    if path.is_file():
        if heads:
            raise UsageError("--heads needs a model folder (models/NAME); a .tflite is one head")
        return DiagnosisPlan(str(path), None, ())
    if not path.is_dir():
        raise UsageError(f"--model {model}: no such model folder or .tflite file")
    prec = _precision(precision)
    wanted = parse_heads(heads) if heads else None
    have: list[Head] = []
    if (path / MANIFEST_NAME).is_file():
        have = [r.variant.head for r in read_manifest(path).variants if r.variant.precision == prec]
    if wanted is None:
        wanted = tuple(h for h in Head if h in have) or DEFAULT_BUILD_HEADS
    missing = tuple(h for h in wanted if h not in have)
    built: tuple[str, ...] = ()
    if missing:
        if not (path / "model.keras").is_file():
            ids = ", ".join(f"{h}-{prec}" for h in missing)
            raise ModelError(f"{path} has no {ids} and no model.keras to build them from")
        from harness.convert.pipeline import ConvertOptions, convert_model

        convert_model(path, ConvertOptions(heads=missing, precisions=(prec,), accuracy=False))
        built = tuple(f"{h}-{prec}" for h in missing)
    ids = [f"{h}-{prec}" for h in wanted]
    return DiagnosisPlan(str(path), ",".join(ids), tuple(str(h) for h in wanted), built)
