"""``harness convert``: model folder -> ``variants/<id>.tflite`` + ``variants.json``.

Stages: load and validate the folder (nothing is written before this passes) -> data
(representative set, QAT training set, eval set) -> float reference on the eval set ->
for each variant: convert, write atomically, inspect (I/O, ops, GPU verdict), desktop
reference outputs (cached), accuracy -> manifest rewritten atomically after every variant, so
an interrupted run keeps every finished variant and a consistent manifest.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import metrics
from harness.convert import heads as heads_mod
from harness.convert.folder import (
    DataProvider,
    ModelFolder,
    default_data_provider,
    load_model_folder,
)
from harness.convert.reference import EvalSet, normalize, reference_outputs
from harness.convert.specs import InputSpec, OutputSpec
from harness.convert.tflite_model import TfliteModel, read_tflite
from harness.convert.variants import (
    DEFAULT_HEADS,
    DEFAULT_PRECISIONS,
    Head,
    Manifest,
    Precision,
    Variant,
    VariantRecord,
    atomic_write_bytes,
    read_manifest,
    write_manifest,
)
from harness.errors import ConversionFailed, HarnessError, ModelError, UsageError

__all__ = ["ConvertOptions", "convert_model", "plan_variants"]

# (message, done, total): called before each step and once at the end
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ConvertOptions:
    heads: tuple[Head, ...] = DEFAULT_HEADS
    precisions: tuple[Precision, ...] = DEFAULT_PRECISIONS
    qat_heads: tuple[Head, ...] | None = (Head.SOFTMAX,)  # None: every requested head
    qat_epochs: int = 4
    qat_samples: int = 256
    representative_samples: int = 100
    eval_samples: int | None = None  # None: the whole validation split
    accuracy: bool = True
    num_threads: int | None = None
    explain_quantization: bool = False  # per-layer error of each int8 head (needs accuracy)
    # layers kept float in <head>-int8-selective: node names, ("auto",) = the suggestion
    float_layers: tuple[str, ...] = ()


def plan_variants(options: ConvertOptions) -> list[Variant]:
    """The variants to build, in order: non-QAT precisions first, QAT last.

    QAT is built for the requested heads that are also in ``qat_heads`` (the first requested
    head if none is): fine-tuning is paid once, each extra QAT head is one more conversion.
    """
    later = (Precision.QAT, Precision.INT8_SELECTIVE)  # QAT below; selective: --float-layers
    out = [Variant(h, p) for p in options.precisions if p not in later for h in options.heads]
    if Precision.QAT in options.precisions and options.heads:
        wanted = options.heads if options.qat_heads is None else options.qat_heads
        qat_heads = [h for h in options.heads if h in wanted] or [options.heads[0]]
        out += [Variant(h, Precision.QAT) for h in qat_heads]
    return out


def _finite(value: float | None, digits: int = 8) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _specs(tm: TfliteModel, head: Head, mf: ModelFolder) -> tuple[InputSpec, OutputSpec]:
    t_in, t_out = tm.inputs[0], tm.outputs[0]
    semantics, activation, channels = heads_mod.output_semantics(head)
    inp = mf.train_json["input"]
    input_spec = InputSpec(
        name=t_in.name,
        index=t_in.index,
        shape=t_in.shape,
        dtype=t_in.dtype,
        normalization=mf.normalization,
        quantization=t_in.quantization,
        color=str(inp.get("color", "RGB")),
        layout=str(inp.get("layout", "NHWC")),
    )
    output_spec = OutputSpec(
        name=t_out.name,
        index=t_out.index,
        shape=t_out.shape,
        dtype=t_out.dtype,
        semantics=semantics,
        activation=activation,
        channels=channels,
        foreground_channel=mf.foreground_channel if channels == 2 else None,
        quantization=t_out.quantization,
    )
    return input_spec, output_spec


def _accuracy(
    head: Head,
    fg_prob: np.ndarray,
    mask: np.ndarray,
    float_logits: np.ndarray,
    eval_set: EvalSet,
    fg: int,
) -> dict[str, Any]:
    float_mask = heads_mod.apply_numpy(Head.ARGMAX, float_logits, fg)
    float_prob = heads_mod.float_fg_prob(head, float_logits, fg)
    vs_float: dict[str, Any] = {
        "mask_iou": _finite(metrics.iou(mask, float_mask)),
        "mask_agreement": _finite(metrics.pixel_accuracy(mask, float_mask)),
        "fg_prob_max_abs_error": None,
        "fg_prob_mean_abs_error": None,
    }
    if float_prob is not None:
        vs_float["fg_prob_max_abs_error"] = _finite(metrics.max_abs_error(fg_prob, float_prob))
        vs_float["fg_prob_mean_abs_error"] = _finite(metrics.mean_abs_error(fg_prob, float_prob))
    out: dict[str, Any] = {"eval_set": eval_set.fingerprint, "vs_float": vs_float}
    if eval_set.masks is not None:
        out["vs_ground_truth"] = {
            "mask_iou": _finite(metrics.iou(mask, eval_set.masks)),
            "pixel_accuracy": _finite(metrics.pixel_accuracy(mask, eval_set.masks)),
        }
    return out


def _existing_manifest(mf: ModelFolder, model_sha: str) -> Manifest:
    fresh = Manifest(model=mf.name, source=_source(mf, model_sha))
    try:
        old = read_manifest(mf.path)
    except HarnessError:
        return fresh
    if old.source.get("model_sha256") != model_sha:
        return fresh  # the model changed: earlier variants are stale
    kept = tuple(r for r in old.variants if (mf.path / r.file).is_file())
    return replace(old, variants=kept, source=fresh.source)


def _source(mf: ModelFolder, model_sha: str) -> dict[str, Any]:
    from harness import tfcompat

    return {
        "model_sha256": model_sha,
        "arch": mf.train_json.get("arch"),
        "input": mf.train_json.get("input"),
        "foreground_channel": mf.foreground_channel,
        "tensorflow": tfcompat.tf().__version__,
    }


def _write_variant(
    mf: ModelFolder,
    variant: Variant,
    blob: bytes,
    converter_info: dict[str, Any],
    eval_set: EvalSet | None,
    float_logits: np.ndarray | None,
    num_threads: int | None,
) -> VariantRecord:
    """Write ``variants/<id>.tflite`` atomically and describe it (specs, ops, GPU, accuracy)."""
    target = mf.path / "variants" / variant.filename
    atomic_write_bytes(target, blob)
    tm = read_tflite(target)
    input_spec, output_spec = _specs(tm, variant.head, mf)
    accuracy = None
    if eval_set is not None and float_logits is not None:
        ref = reference_outputs(
            target,
            eval_set,
            input_spec,
            output_spec,
            cache_dir=mf.path / "reference",
            num_threads=num_threads,
        )
        accuracy = _accuracy(
            variant.head, ref.fg_prob, ref.mask, float_logits, eval_set, mf.foreground_channel
        )
    return VariantRecord.of_file(
        tm,
        variant,
        f"variants/{variant.filename}",
        input_spec,
        output_spec,
        accuracy=accuracy,
        converter=converter_info,
    )


def _quantization_stage(
    mf: ModelFolder,
    options: ConvertOptions,
    manifest: Manifest,
    x_rep: np.ndarray,
    eval_set: EvalSet,
    float_logits: np.ndarray,
    report: ProgressFn,
    total: int,
) -> Manifest:
    """Per-layer error of each requested head at int8 (stored on its ``<head>-int8`` record)
    and, with ``float_layers``, the ``<head>-int8-selective`` variants."""
    from harness.convert.explain import SelectiveQuantizer, explain_quantization

    x_eval = normalize(eval_set.images, mf.normalization)
    auto = options.float_layers == ("auto",)
    for head in options.heads:
        report(f"quantization error of {head}-int8", total - 1, total)
        qreport = None
        if options.explain_quantization or auto:
            qreport, sq = explain_quantization(
                mf.model, head, x_rep, x_eval, float_logits, fg=mf.foreground_channel
            )
            int8_id = Variant(head, Precision.INT8).id
            if any(r.id == int8_id for r in manifest.variants):
                rec = replace(manifest.get(int8_id), quantization=qreport.to_dict())
                manifest = manifest.with_records([rec])
        else:
            sq = SelectiveQuantizer(mf.model, head, x_rep, mf.foreground_channel)
        if options.float_layers:
            names = qreport.suggested if auto and qreport else options.float_layers
            if auto and not names:
                continue  # nothing worth keeping float: the report says so
            known = sq.downstream()
            unknown = [n for n in names if n not in known]
            if unknown:
                raise UsageError(
                    f"--float-layers: {unknown[0]!r} is not a layer of {head}-int8 "
                    "(see --explain-quantization for the names)"
                )
            variant = Variant(head, Precision.INT8_SELECTIVE)
            report(f"converting {variant.id}", total - 1, total)
            blob = sq.quantize(names)
            info = {
                "representative_samples": len(x_rep),
                "io_dtype": "int8",
                "float_layers": list(names),
                "float_layers_source": "auto" if auto else "given",
                "int8_size": len(sq.quantize(())),
            }
            record = _write_variant(
                mf, variant, blob, info, eval_set, float_logits, options.num_threads
            )
            manifest = manifest.with_records([record])
        write_manifest(mf.path, manifest)
    return manifest


def _train_inputs(
    mf: ModelFolder, options: ConvertOptions, provider: DataProvider
) -> tuple[np.ndarray, np.ndarray]:
    """(representative samples, the whole normalized training split for QAT)."""
    images, _masks = provider("train")
    if len(images) == 0:
        raise ModelError("the training split is empty: no representative data")
    x_train = normalize(images, mf.normalization)
    return x_train[: options.representative_samples], x_train


def _float_reference(mf: ModelFolder, options: ConvertOptions, provider: DataProvider):
    """(eval set, the float model's logits on it, its IoU vs ground truth or None)."""
    images, masks = provider("val")
    eval_set = EvalSet(f"{mf.name}-val", images, masks).head(options.eval_samples)
    float_logits = mf.model.predict(
        normalize(eval_set.images, mf.normalization), batch_size=8, verbose=0
    )
    float_mask = heads_mod.apply_numpy(Head.ARGMAX, float_logits, mf.foreground_channel)
    float_model: dict[str, Any] | None = None
    if eval_set.masks is not None:
        float_model = {
            "vs_ground_truth": {
                "mask_iou": _finite(metrics.iou(float_mask, eval_set.masks)),
                "pixel_accuracy": _finite(metrics.pixel_accuracy(float_mask, eval_set.masks)),
            }
        }
    return eval_set, float_logits, float_model


def _convert(
    mf: ModelFolder,
    options: ConvertOptions,
    variant: Variant,
    x_rep: np.ndarray | None,
    x_train: np.ndarray | None,
    qat: dict[str, Any],
    say: Callable[[str], None],
) -> tuple[bytes, dict[str, Any]]:
    """One variant's .tflite bytes and how the converter made it."""
    from harness.convert.quantize import convert_variant, make_qat_model

    converter_info: dict[str, Any] = {}
    model = mf.model
    if variant.precision.integer_io:
        converter_info["representative_samples"] = len(x_rep)
        converter_info["io_dtype"] = "int8"
    if variant.precision is Precision.QAT:
        if "model" not in qat:
            say(f"QAT fine-tuning ({options.qat_epochs} epochs)")
            n = options.qat_samples
            qat["model"] = make_qat_model(
                mf.model, x_train[:n], representative=x_rep, epochs=options.qat_epochs
            )
        model = qat["model"]
        converter_info.update(
            qat_epochs=options.qat_epochs, qat_samples=min(options.qat_samples, len(x_train))
        )
    blob = convert_variant(
        model,
        variant.head,
        variant.precision,
        representative=x_rep,
        foreground_channel=mf.foreground_channel,
    )
    return blob, converter_info


def convert_model(
    path: Path,
    options: ConvertOptions | None = None,
    *,
    data: DataProvider | None = None,
    progress: ProgressFn | None = None,
) -> Manifest:
    """Build the requested variants of the model folder at ``path``; returns the manifest."""
    options = options or ConvertOptions()
    plan = plan_variants(options)
    quant_stage = options.explain_quantization or bool(options.float_layers)
    if Precision.INT8_SELECTIVE in options.precisions and not options.float_layers:
        raise UsageError("precision int8-selective is built by --float-layers NAMES|auto")
    if quant_stage and not options.accuracy:
        raise UsageError("--explain-quantization and --float-layers need the accuracy pass")
    if not plan and not quant_stage:
        raise ModelError("nothing to convert: no heads or precisions requested")
    mf = load_model_folder(path)  # validates before anything is written
    provider = data or default_data_provider(mf)
    report = progress or (lambda _m, _d, _t: None)
    total = len(plan) + 1
    needs_train = quant_stage or any(v.precision.integer_io for v in plan)

    report("preparing data", 0, total)
    x_rep, x_train = _train_inputs(mf, options, provider) if needs_train else (None, None)
    eval_set = float_logits = float_model = None
    if options.accuracy:
        eval_set, float_logits, float_model = _float_reference(mf, options, provider)

    model_sha = hashlib.sha256((mf.path / "model.keras").read_bytes()).hexdigest()
    manifest = _existing_manifest(mf, model_sha)
    manifest = replace(
        manifest,
        eval_set=eval_set.describe() if eval_set is not None else manifest.eval_set,
        float_model=float_model if float_model is not None else manifest.float_model,
    )
    qat: dict[str, Any] = {}  # the fine-tuned model, made once for every QAT head
    for done, variant in enumerate(plan, start=1):
        report(f"converting {variant.id}", done, total)

        def say(message: str, done: int = done) -> None:
            report(message, done, total)

        blob, converter_info = _convert(mf, options, variant, x_rep, x_train, qat, say)
        record = _write_variant(
            mf, variant, blob, converter_info, eval_set, float_logits, options.num_threads
        )
        manifest = manifest.with_records([record])
        write_manifest(mf.path, manifest)
    if quant_stage:
        assert eval_set is not None and float_logits is not None and x_rep is not None
        manifest = _quantization_stage(
            mf, options, manifest, x_rep, eval_set, float_logits, report, total
        )
    report("done", total, total)
    if not manifest.variants:
        raise ConversionFailed("no variant was written")
    return manifest
