"""Per-layer quantization error and selective quantization (``--explain-quantization``,
``--float-layers``).

TFLite's ``QuantizationDebugger`` calibrates (network + head) on the representative set and
builds a *debug* model where every quantized op's output is compared with its float
counterpart (NumericVerify); its per-layer statistics give each tensor's error relative to
its quantization step (``rmse / scale``: ~0.3 is pure rounding noise, well above 1 means the
range or the arithmetic lose information). The same calibrated model is then re-quantized
with some nodes *denylisted* (kept float, the rest int8): keeping one suspect layer in float
at a time measures its effect on the final mask IoU vs the float model, the quantity a user
cares about; the suggestion is the smallest prefix of the ranked layers that recovers the
IoU of keeping all the examined ones in float.

Everything is measured on the desktop (LiteRT, XNNPACK); nothing is estimated.

The debugger's per-layer bookkeeping (``_numeric_verify_op_details``, ``_defining_op``,
``_quant_interpreter``) and ``tensorflow.lite.python.convert.mlir_quantize`` (what the
debugger's own ``get_nondebug_quantized_model`` calls, here with int8 I/O) are not public
API: they are used as TF 2.21 ships them (the lock pins it); a change breaks
``tests/convert/test_explain.py``, not a user's run silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harness import metrics
from harness.convert import heads as heads_mod
from harness.convert._native import native_output_silenced
from harness.convert.variants import Head
from harness.errors import ConversionFailed

__all__ = [
    "LayerError",
    "QuantizationReport",
    "SelectiveQuantizer",
    "explain_quantization",
    "suggest_float_layers",
]

TOP_K = 8  # layers (worst rmse/scale) whose float effect on the IoU is measured one by one
# a layer whose float copy changes the IoU by less than this is not worth its float cost
MIN_GAIN = 0.0005


@dataclass(frozen=True)
class LayerError:
    """One quantized tensor: its error vs float on the representative set."""

    name: str  # the tensor (= node) name, what --float-layers takes
    op: str
    scale: float
    rmse_over_scale: float
    max_abs_error: float
    mean_error: float
    iou_if_float: float | None = None  # mask IoU vs float with this layer alone kept float
    downstream: tuple[str, ...] = ()  # the ops fed by this layer, directly or not
    iou_if_float_downstream: float | None = None  # ... with the layer and its downstream float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "scale": _finite(self.scale),
            "rmse_over_scale": _finite(self.rmse_over_scale),
            "max_abs_error": _finite(self.max_abs_error),
            "mean_error": _finite(self.mean_error),
            "iou_if_float": _finite(self.iou_if_float),
            "downstream_ops": len(self.downstream),
            "iou_if_float_downstream": _finite(self.iou_if_float_downstream),
        }


@dataclass(frozen=True)
class QuantizationReport:
    """The per-layer error of one int8 variant, ranked worst first, and a suggestion."""

    variant: str
    eval_samples: int
    representative_samples: int
    iou_vs_float: float  # of the fully quantized (int8) model
    size: int
    layers: tuple[LayerError, ...]  # ranked: measured effect first, then rmse/scale
    suggested: tuple[str, ...] = ()
    suggested_iou: float | None = None
    suggested_size: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "eval_samples": self.eval_samples,
            "representative_samples": self.representative_samples,
            "iou_vs_float": _finite(self.iou_vs_float),
            "size": self.size,
            "layers": [la.to_dict() for la in self.layers],
            "suggested_float_layers": list(self.suggested),
            "suggested_iou_vs_float": _finite(self.suggested_iou),
            "suggested_size": self.suggested_size,
            "notes": list(self.notes),
        }


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


class SelectiveQuantizer:
    """One calibration of (model + head) at int8; quantized models with any denylist.

    Integer I/O like the ``int8`` precision. ``quantize(())`` is the plain int8 model.
    """

    def __init__(self, model: Any, head: Head, representative: np.ndarray, fg: int = 1) -> None:
        from harness import tfcompat
        from harness.convert.quantize import _representative, _serving_function

        tf = tfcompat.tf()
        self.head = Head(head)
        try:
            serve = _serving_function(model, self.head, fg)
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [serve.get_concrete_function()], serve
            )
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(representative)
            options = tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True)
            with native_output_silenced():
                self.debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter,
                    debug_dataset=_representative(representative),
                    debug_options=options,
                )
        except Exception as exc:
            raise ConversionFailed(
                f"quantization debugger for {self.head}: {type(exc).__name__}: "
                f"{str(exc).strip()[:200]}"
            ) from exc
        self.representative = representative

    def quantize(self, float_layers: Sequence[str] = ()) -> bytes:
        """The int8 model with ``float_layers`` (tensor/node names) kept in float."""
        from harness import tfcompat

        tf = tfcompat.tf()  # before any tensorflow import (TF_USE_LEGACY_KERAS)
        from tensorflow.lite.python import convert

        output_type = tf.uint8 if self.head is Head.ARGMAX else tf.int8
        try:
            with native_output_silenced():
                return bytes(
                    convert.mlir_quantize(
                        self.debugger.calibrated_model,
                        fully_quantize=True,
                        input_data_type=tf.int8,
                        output_data_type=output_type,
                        denylisted_nodes=list(float_layers) or None,
                    )
                )
        except Exception as exc:
            raise ConversionFailed(
                f"selective quantization ({len(float_layers)} float layers) failed: "
                f"{type(exc).__name__}: {str(exc).strip()[:200]}"
            ) from exc

    def downstream(self) -> dict[str, tuple[str, ...]]:
        """``{node: nodes it feeds, directly or not}`` over the plain int8 model's ops
        (QUANTIZE/DEQUANTIZE excluded: they are not layers)."""
        from ai_edge_litert.interpreter import Interpreter

        with native_output_silenced():
            interp = Interpreter(model_content=self.quantize(()))
        names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
        ops = interp._get_ops_details()
        consumers: dict[int, list[dict[str, Any]]] = {}
        for op in ops:
            for i in op["inputs"]:
                consumers.setdefault(int(i), []).append(op)
        out: dict[str, tuple[str, ...]] = {}
        for op in ops:
            seen: list[str] = []
            stack = [int(i) for i in op["outputs"]]
            while stack:
                for nxt in consumers.get(stack.pop(), []):
                    name = names[int(nxt["outputs"][0])]
                    if name in seen:
                        continue
                    if nxt["op_name"] not in ("QUANTIZE", "DEQUANTIZE"):
                        seen.append(name)
                    stack.extend(int(i) for i in nxt["outputs"])
            out[names[int(op["outputs"][0])]] = tuple(seen)
        return out

    def layer_errors(self) -> list[LayerError]:
        """Per-layer statistics of the debug model on the representative set."""
        with native_output_silenced():
            self.debugger.run()
        stats = self.debugger.layer_statistics or {}
        interp = self.debugger._quant_interpreter  # the debug model's interpreter
        verify = self.debugger._numeric_verify_op_details
        defining = self.debugger._defining_op
        out = []
        for key, values in stats.items():
            tensor_idx = verify[key]["inputs"][0]
            op = interp._get_op_details(defining[tensor_idx])["op_name"]
            details = interp._get_tensor_details(tensor_idx, subgraph_index=0)
            scales = details["quantization_parameters"]["scales"]
            scale = float(scales[0]) if len(scales) else float("nan")
            name, _ = self.debugger._get_operand_name_and_index(key)
            mse = float(values["mean_squared_error"])
            out.append(
                LayerError(
                    name=name,
                    op=str(op),
                    scale=scale,
                    rmse_over_scale=math.sqrt(mse) / scale if scale > 0 else float("inf"),
                    max_abs_error=float(values["max_abs_error"]),
                    mean_error=float(values["mean_error"]),
                )
            )
        out.sort(key=lambda la: -la.rmse_over_scale if math.isfinite(la.rmse_over_scale) else 0)
        return out


def mask_iou_vs_float(
    blob: bytes, head: Head, x_eval: np.ndarray, float_mask: np.ndarray, fg: int = 1
) -> float:
    """Mask IoU of a (quantized) variant vs the float model's mask on normalized ``x_eval``."""
    from ai_edge_litert.interpreter import Interpreter

    from harness.convert.reference import run_tflite

    with native_output_silenced():
        interp = Interpreter(model_content=blob)
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    x = np.asarray(x_eval, np.float32)
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    raw = run_tflite(blob, x).astype(np.float32)
    if outp["dtype"] != np.float32 and head is not Head.ARGMAX:
        scale, zero = outp["quantization"]
        raw = (raw - zero) * scale
    mask = _mask(head, raw, fg)
    return metrics.iou(mask, float_mask)


def _mask(head: Head, out: np.ndarray, fg: int) -> np.ndarray:
    if head is Head.ARGMAX:
        return (out != 0).astype(np.uint8)
    if head is Head.SIGMOID:
        return (out[..., 0] > 0.5).astype(np.uint8)
    return heads_mod.apply_numpy(Head.ARGMAX, out, fg)  # 2 channels: fg beats bg


def suggest_float_layers(
    measured: Sequence[LayerError], base_iou: float, tolerance: float = 0.002
) -> tuple[tuple[str, ...], float | None]:
    """The cheapest measured option (fewest float ops) whose IoU is within ``tolerance`` of
    the best measured one; ``((), None)`` when nothing gains :data:`MIN_GAIN` over
    ``base_iou``. Options are one layer alone, or one layer with its downstream ops."""
    options: list[tuple[tuple[str, ...], float]] = []
    for la in measured:
        if la.iou_if_float is not None:
            options.append(((la.name,), la.iou_if_float))
        if la.iou_if_float_downstream is not None:
            options.append(((la.name, *la.downstream), la.iou_if_float_downstream))
    useful = [(names, iou) for names, iou in options if iou - base_iou >= MIN_GAIN]
    if not useful:
        return (), None
    best = max(iou for _, iou in useful)
    names, iou = min(
        ((n, i) for n, i in useful if i >= best - tolerance), key=lambda o: (len(o[0]), -o[1])
    )
    return names, iou


def explain_quantization(
    model: Any,
    head: Head,
    representative: np.ndarray,
    x_eval: np.ndarray,
    float_logits: np.ndarray,
    *,
    fg: int = 1,
    top_k: int = TOP_K,
    variant: str | None = None,
    progress: Any = None,
) -> tuple[QuantizationReport, SelectiveQuantizer]:
    """Per-layer error of the int8 ``head`` variant, each top layer's effect when kept float,
    and the suggested float layers; also returns the quantizer (to build the suggestion)."""
    head = Head(head)
    report = progress or (lambda _m, _d, _t: None)
    sq = SelectiveQuantizer(model, head, representative, fg)
    float_mask = heads_mod.apply_numpy(Head.ARGMAX, float_logits, fg)

    def iou_of(names: Sequence[str]) -> float:
        return mask_iou_vs_float(sq.quantize(names), head, x_eval, float_mask, fg)

    report("per-layer statistics", 0, top_k + 1)
    try:
        layers = sq.layer_errors()
        graph = sq.downstream()
    except Exception as exc:  # the debugger's private bookkeeping changed shape
        raise ConversionFailed(
            f"per-layer statistics of {head}-int8 failed: {type(exc).__name__}: {exc}"[:300]
        ) from exc
    base_blob = sq.quantize(())
    base_iou = iou_of(())
    measured = []
    for i, layer in enumerate(layers[:top_k], start=1):
        report(f"keeping {layer.name[:40]} in float", i, top_k + 1)
        down = graph.get(layer.name, ())
        alone = iou_of([layer.name])
        with_down = iou_of([layer.name, *down]) if down else None
        measured.append(
            replace(layer, iou_if_float=alone, downstream=down, iou_if_float_downstream=with_down)
        )

    def effect(la: LayerError) -> float:
        return max(la.iou_if_float or 0.0, la.iou_if_float_downstream or 0.0)

    ranked = tuple(sorted(measured, key=lambda la: -effect(la)) + layers[top_k:])
    suggested, suggested_iou = suggest_float_layers(measured, base_iou)
    suggested_size = len(sq.quantize(suggested)) if suggested else None
    notes: list[str] = []
    if not suggested:
        notes.append(f"keeping no examined layer in float gains >= {MIN_GAIN} IoU")
    report("done", top_k + 2, top_k + 2)
    return (
        QuantizationReport(
            variant=variant or f"{head}-int8",
            eval_samples=len(x_eval),
            representative_samples=len(representative),
            iou_vs_float=base_iou,
            size=len(base_blob),
            layers=ranked,
            suggested=suggested,
            suggested_iou=suggested_iou,
            suggested_size=suggested_size,
            notes=tuple(notes),
        ),
        sq,
    )
