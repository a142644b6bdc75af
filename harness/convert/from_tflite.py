"""``harness convert FILE.tflite``: heads made from any float .tflite, as a model folder.

Stages: resolve the file's I/O spec (:mod:`harness.convert.iospec`: normalization from its
metadata or flags, the mask output) -> find its logits (:func:`surgery.find_logits`) -> make
each head (:func:`surgery.make_head`), written atomically as ``variants/<head>-fp32.tflite`` ->
check every head on the desktop against the logits head (fp32: the sigmoid head equals the
softmax foreground within ``TOLERANCE``; a head that does not is refused, nothing written for
it) -> ``variants.json``. ``bench``, ``diagnose`` and ``report`` then use the folder like one
made by ``harness train`` + ``convert`` (no ``model.keras``: no other precisions).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.convert import heads as heads_mod
from harness.convert.iospec import IoOptions, resolve_io
from harness.convert.specs import Activation, InputSpec, OutputSpec, infer_output_spec
from harness.convert.surgery import SURGERY_HEADS, Cut, find_logits, make_head
from harness.convert.tflite_model import read_tflite
from harness.convert.variants import (
    Head,
    Manifest,
    Precision,
    Variant,
    VariantRecord,
    atomic_write_bytes,
    write_manifest,
)
from harness.errors import ConversionFailed, ModelError, UsageError

__all__ = ["CHECK_IMAGES", "TOLERANCE", "convert_tflite", "default_out_dir"]

TOLERANCE = 1e-5  # fp32 heads vs the float64 expression of the logits head's output
CHECK_IMAGES = 4  # synthetic portraits the heads are checked on
CHECK_SEED = 20261130

_ACTIVATION = {
    Head.SOFTMAX: Activation.SOFTMAX,
    Head.SIGMOID: Activation.SIGMOID,
    Head.LOGITS: Activation.NONE,
    Head.ARGMAX: Activation.ARGMAX,
}


def default_out_dir(path: Path) -> Path:
    """``x/selfie.tflite`` -> ``x/selfie`` (the model folder beside the file)."""
    return Path(path).with_suffix("")


def _check_images(input_spec: InputSpec) -> np.ndarray:
    from harness.train.data import synthetic_portraits

    h, w, c = input_spec.height, input_spec.width, input_spec.channels
    images, _ = synthetic_portraits(
        CHECK_IMAGES, max(h, w), CHECK_SEED, channels=4 if c == 4 else 3
    )
    if (h, w) != images.shape[1:3]:
        import cv2

        images = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images])
    return images[..., :1] if c == 1 else images


def _pair(z: np.ndarray, cut: Cut) -> np.ndarray:
    """The 2-class logits ``[..., 2]`` of the logits head's output."""
    if cut.channels == 2:
        return z
    z = z.reshape(*z.shape[:3], 1)
    return np.concatenate([np.zeros_like(z), z], axis=-1)


def _check(head: Head, out: np.ndarray, pair: np.ndarray, cut: Cut) -> float:
    """Max |head output - its float64 expression of the logits|; -1 for an exact mask."""
    fg = 1 if cut.channels == 1 else cut.foreground
    with np.errstate(over="ignore"):  # exp(-z) of a very negative logit: sigmoid 0, exact
        expected = heads_mod.apply_numpy(head, pair, fg)
    if head is Head.ARGMAX:
        return -1.0 if np.array_equal(out.reshape(expected.shape), expected) else float("inf")
    if head is Head.LOGITS:
        return 0.0
    return float(np.max(np.abs(out.reshape(expected.shape) - expected)))


def _cross_checks(outputs: dict[Head, np.ndarray], original: np.ndarray, cut: Cut) -> dict:
    """fp32 sigmoid vs softmax foreground (must agree within TOLERANCE), and the head that
    re-expresses the file's own activation vs the file's output (recorded)."""
    fg = 1 if cut.channels == 1 else cut.foreground
    checks: dict[str, float] = {}
    if Head.SIGMOID in outputs and Head.SOFTMAX in outputs:
        sig = outputs[Head.SIGMOID].reshape(outputs[Head.SOFTMAX].shape[:3])
        err = float(np.max(np.abs(sig - outputs[Head.SOFTMAX][..., fg])))
        checks["sigmoid_vs_softmax_fg_max_abs"] = err
        if err > TOLERANCE:
            raise ConversionFailed(
                f"the sigmoid head differs from the softmax foreground by {err:.3g} "
                f"(> {TOLERANCE:g}) on the desktop"
            )
    same = {"SOFTMAX": Head.SOFTMAX, "LOGISTIC": Head.SIGMOID, "none": Head.LOGITS}[cut.cut]
    if same in outputs and outputs[same].size == original.size:
        diff = np.abs(outputs[same].reshape(original.shape) - original)
        checks[f"{same}_vs_original_max_abs"] = float(np.max(diff))
    return checks


def _record(
    head: Head, file: Path, folder: Path, input_spec: InputSpec, cut: Cut, error: float
) -> VariantRecord:
    tm = read_tflite(file, verify=False)
    t_out = tm.outputs[0]
    output_spec: OutputSpec = infer_output_spec(
        name=t_out.name,
        index=t_out.index,
        shape=t_out.shape,
        dtype=t_out.dtype,
        quantization=t_out.quantization,
        activation=_ACTIVATION[head],
        foreground_channel=cut.foreground
        if t_out.shape[-1] == 2 and len(t_out.shape) == 4
        else None,
    )
    check: dict[str, Any] = {"vs_logits_head": {"max_abs_error": None if error < 0 else error}}
    if head is Head.ARGMAX:
        check["vs_logits_head"]["mask_equal"] = error < 0
    return VariantRecord.of_file(
        tm,
        Variant(head, Precision.FP32),
        str(file.relative_to(folder)),
        input_spec,
        output_spec,
        accuracy=check,
        converter={"surgery": cut.to_dict()},
    )


def convert_tflite(
    path: Path,
    heads: tuple[Head, ...] = SURGERY_HEADS,
    out_dir: Path | None = None,
    io: IoOptions | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Manifest:
    """Make ``heads`` (fp32) from the float .tflite ``path`` into ``out_dir``/variants."""
    from harness.convert.reference import preprocess, run_tflite

    path = Path(path)
    report = progress or (lambda _m, _d, _t: None)
    bad = [str(h) for h in heads if h not in SURGERY_HEADS]
    if bad:
        known = ", ".join(str(h) for h in SURGERY_HEADS)
        raise UsageError(f"--heads {','.join(bad)}: not made from a .tflite (made: {known})")
    tm = read_tflite(path)
    spec = resolve_io(tm, None, io, where=str(path))
    if tm.inputs[0].dtype != "float32":
        raise ModelError(f"{path} has a {tm.inputs[0].dtype} input: heads need a float .tflite")
    data = path.read_bytes()
    cut = find_logits(data, spec.output.index, (io or IoOptions()).fg_channel, where=str(path))
    folder = Path(out_dir) if out_dir is not None else default_out_dir(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder}: not a folder")
    x = preprocess(_check_images(spec.input), spec.input)
    blobs = {h: make_head(data, cut, h) for h in dict.fromkeys((Head.LOGITS, *heads))}
    z = run_tflite(blobs[Head.LOGITS], x)
    pair = _pair(z, cut)
    total = len(heads) + 1
    records = []
    outputs: dict[Head, np.ndarray] = {}
    for done, head in enumerate(heads, start=1):
        report(f"making {head}-fp32", done, total)
        out = outputs[head] = z if head is Head.LOGITS else run_tflite(blobs[head], x)
        error = _check(head, out, pair, cut)
        if error > TOLERANCE:
            raise ConversionFailed(
                f"{head} head made from {path.name} differs from its logits by {error:.3g} "
                f"(> {TOLERANCE:g}) on the desktop"
            )
        file = folder / "variants" / f"{head}-fp32.tflite"
        atomic_write_bytes(file, blobs[head])
        records.append(_record(head, file, folder, spec.input, cut, error))
    checks = _cross_checks(outputs, run_tflite(data, x, output_index=spec.output.index), cut)
    manifest = Manifest(
        model=path.stem,
        source={
            "checks": checks,
            "tflite": path.name,
            "tflite_sha256": tm.sha256,
            "normalization_source": str(spec.normalization_source),
            "warnings": list(spec.warnings),
            "io": (io or IoOptions()).to_dict(),
            **cut.to_dict(),
        },
    ).with_records(records)
    write_manifest(folder, manifest)
    report("done", total, total)
    return manifest
