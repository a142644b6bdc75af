"""Compare device outputs with references: the metrics (pure numpy). What they mean for the
cell (its signature) is :func:`harness.cell.judge`'s call."""

from __future__ import annotations

import math

import numpy as np

from harness import metrics
from harness.evalset import IGNORE


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)


def _count(x: np.ndarray | None, test) -> int:
    if x is None or np.dtype(x.dtype).kind != "f":
        return 0
    return int(np.count_nonzero(test(x)))


def _iou(pred: np.ndarray, true: np.ndarray) -> float:
    return float(metrics.iou(pred.astype(bool), true.astype(bool)))


def vs_reference(
    device_fg: np.ndarray,
    device_mask: np.ndarray,
    ref_fg: np.ndarray,
    ref_mask: np.ndarray,
    class_probs: np.ndarray | None = None,
    whole_output: np.ndarray | None = None,
) -> dict:
    """Fidelity of the device against the desktop output of the same variant.

    ``class_probs`` [N,H,W,C] (for class-probability outputs) enables the sum-to-one check.
    ``whole_output`` is the device's whole output tensor, every channel (dequantized): NaN and
    Inf are counted over it, not over the foreground alone, since the old GL softmax kernel
    leaves the *background* channel NaN while the foreground reads a plausible 0
    (FACTS.md §2). Without it, the foreground (and ``class_probs``) are counted.
    """
    n = device_fg.shape[0]
    counted = [whole_output] if whole_output is not None else [device_fg, class_probs]
    nan = sum(_count(x, np.isnan) for x in counted)
    inf = sum(_count(x, np.isinf) for x in counted)
    per_image = [_iou(device_mask[i], ref_mask[i]) for i in range(n)]
    diff = np.abs(_finite(device_fg) - ref_fg.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    mse = float((diff**2).mean()) if diff.size else 0.0
    psnr = math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
    sum_err = None
    if class_probs is not None:
        sums = np.nansum(class_probs.astype(np.float64), axis=-1)
        sum_err = float(np.nanmax(np.abs(sums - 1.0))) if sums.size else 0.0
        if nan or inf:
            sum_err = max(sum_err, 1.0)
    finite = device_fg[np.isfinite(device_fg)]
    constant = bool(finite.size == 0 or float(finite.max() - finite.min()) < 1e-6)
    inverted_iou = float(np.mean([_iou(1 - device_mask[i], ref_mask[i]) for i in range(n)]))
    iou = float(np.mean(per_image))
    inverted = bool(inverted_iou > 0.5 and iou < 0.5)
    return {
        "iou": iou,
        "iou_min": float(min(per_image)),
        "max_abs": max_abs,
        "mean_abs": mean_abs,
        "psnr_db": psnr if math.isfinite(psnr) else None,
        "nan": nan,
        "inf": inf,
        "sum_to_one_err": sum_err,
        "constant": constant,
        "inverted": inverted,
        "worst": [int(i) for i in np.argsort(per_image)[:3]],
    }


def vs_float(device_fg: np.ndarray, device_mask: np.ndarray, float_fg: np.ndarray) -> dict:
    float_mask = (float_fg > 0.5).astype(np.uint8)
    diff = np.abs(_finite(device_fg) - float_fg.astype(np.float64))
    return {
        "iou": float(np.mean([_iou(device_mask[i], float_mask[i]) for i in range(len(float_fg))])),
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
    }


def vs_gt(device_mask: np.ndarray, gt: np.ndarray) -> dict:
    """Mean per-image IoU and pixel accuracy; ground-truth pixels equal to 255 (VOC's
    "ignore", and letterbox padding) are not scored."""
    valid = gt != IGNORE
    ious = [_iou(device_mask[i][valid[i]], gt[i][valid[i]]) for i in range(len(gt))]
    return {
        "iou": float(np.mean(ious)),
        "pixel_acc": float(
            metrics.pixel_accuracy(device_mask[valid].astype(bool), gt[valid].astype(bool))
        ),
        "ignored_pixels": int(np.count_nonzero(~valid)),
    }
