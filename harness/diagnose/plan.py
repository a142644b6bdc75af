"""Which variants a diagnosis runs: one per head, at one precision, built on the fly if needed.

``--model models/NAME``: the heads its ``variants.json`` has at ``--precision`` (default fp32:
the GPU's own precision is a delegate setting), or ``--heads``; heads missing from the manifest
are converted from the folder's ``model.keras`` (``harness convert`` for just those variants),
so the diagnosis compares re-expressions of the same trained model. ``--model FILE.tflite``:
a variant listed in a manifest beside it is diagnosed alone. A float file whose mask output
ends in SOFTMAX (or any float file, with ``--heads``) gets its heads made by graph surgery
(:mod:`harness.convert.from_tflite`, cached under ``$HARNESS_HOME/heads/``), so a lone file can
be told which head to ship. Other files (quantized, or sigmoid/logits without ``--heads``) are
diagnosed as themselves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness import config
from harness.convert.iospec import IoOptions
from harness.convert.variants import (
    MANIFEST_NAME,
    Head,
    Precision,
    parse_heads,
    read_manifest,
)
from harness.errors import ModelError, UsageError

__all__ = ["DEFAULT_BUILD_HEADS", "DiagnosisPlan", "plan_model"]

_INPUT_FLAGS = ("mean", "std", "input_range", "prior", "resize", "mask_class")

# Heads built when a model folder has none yet: the failing head and the documented remedies.
DEFAULT_BUILD_HEADS = (Head.SOFTMAX, Head.SIGMOID, Head.LOGITS, Head.ARGMAX)


@dataclass(frozen=True)
class DiagnosisPlan:
    model: str  # what run_bench is given (folder or file)
    variants: str | None  # the --variants pattern for run_bench
    heads: tuple[str, ...]
    built: tuple[str, ...] = ()  # variant ids converted for this diagnosis
    io: dict | None = None  # the I/O flags the bench gets (None: the user's own)


def _precision(text: str) -> Precision:
    try:
        return Precision(text.strip().lower())
    except ValueError:
        known = ", ".join(str(p) for p in Precision)
        raise UsageError(f"unknown precision {text!r} (known: {known})") from None


def _ends_in_softmax(path: Path, tm, io: IoOptions | None) -> bool:  # type: ignore[no-untyped-def]
    """Whether the mask output of a float file is a SOFTMAX (the head GPUs get wrong)."""
    from harness.convert.iospec import resolve_io
    from harness.convert.surgery import find_logits

    try:
        output = resolve_io(tm, None, io, where=str(path)).output
        cut = find_logits(path.read_bytes(), output.index, None, where=str(path))
    except ModelError:
        return False  # quantized or not a 1/2-class map: diagnosed as itself
    return cut.cut == "SOFTMAX"


def _lone_file(
    path: Path, heads: str | None, precision: str, io: IoOptions | None
) -> DiagnosisPlan:
    from harness.convert.from_tflite import convert_tflite
    from harness.convert.inspection import find_manifest_record
    from harness.convert.surgery import SURGERY_HEADS
    from harness.convert.tflite_model import read_tflite

    tm = read_tflite(path)
    if find_manifest_record(path.resolve(), tm.sha256) is not None:
        if heads:
            raise UsageError("--heads needs a float .tflite or a model folder; this is a variant")
        return DiagnosisPlan(str(path), None, ())
    if _precision(precision) is not Precision.FP32:
        raise UsageError("heads made from a .tflite are fp32: --precision fp32")
    if not heads and not _ends_in_softmax(path, tm, io):
        return DiagnosisPlan(str(path), None, ())  # nothing to compare unless asked
    wanted = parse_heads(heads) if heads else SURGERY_HEADS
    key = json.dumps([tm.sha256, (io or IoOptions()).to_dict(), [str(h) for h in wanted]])
    folder = config.home_dir() / "heads" / hashlib.sha256(key.encode()).hexdigest()[:16]
    built: tuple[str, ...] = ()
    if not (folder / MANIFEST_NAME).is_file():
        try:
            convert_tflite(path, wanted, folder, io)
        except ModelError:
            if heads:
                raise
            return DiagnosisPlan(str(path), None, ())  # quantized: diagnosed as itself
        built = tuple(f"{h}-fp32" for h in wanted)
    ids = [f"{h}-fp32" for h in wanted]
    # The heads' manifest already says which output is the mask; normalization and prior
    # flags still apply (and are checked against the manifest).
    kept = {k: v for k, v in (io or IoOptions()).to_dict().items() if k in _INPUT_FLAGS}
    return DiagnosisPlan(str(folder), ",".join(ids), tuple(str(h) for h in wanted), built, kept)


def plan_model(
    model: str, heads: str | None = None, precision: str = "fp32", io: IoOptions | None = None
) -> DiagnosisPlan:
    path = Path(model)
    if path.is_file():
        return _lone_file(path, heads, precision, io)
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
