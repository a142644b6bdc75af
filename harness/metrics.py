"""Accuracy metrics between masks and probability maps. Pure numpy, no I/O.

Masks are any integer/bool arrays where non-zero means foreground; probability maps are float
arrays in [0, 1]. Every function accepts a single image ``[H, W]`` or a batch ``[N, H, W]`` and
reduces over all pixels it is given (a batch is one pool of pixels, not a mean of per-image
values). NaN in an input propagates to the result: a NaN output is a finding, not noise.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "iou",
    "iou_per_image",
    "max_abs_error",
    "mean_abs_error",
    "pixel_accuracy",
    "psnr",
]


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")


def iou(pred: np.ndarray, true: np.ndarray) -> float:
    """Foreground intersection over union over all pixels; 1.0 when both are empty."""
    pred_b, true_b = np.asarray(pred) != 0, np.asarray(true) != 0
    _check_same_shape(pred_b, true_b)
    union = np.count_nonzero(pred_b | true_b)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred_b & true_b) / union)


def iou_per_image(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU of each image of a batch ``[N, H, W]`` -> float64 ``[N]``."""
    pred_b, true_b = np.asarray(pred) != 0, np.asarray(true) != 0
    _check_same_shape(pred_b, true_b)
    axes = tuple(range(1, pred_b.ndim))
    inter = np.count_nonzero(pred_b & true_b, axis=axes).astype(np.float64)
    union = np.count_nonzero(pred_b | true_b, axis=axes).astype(np.float64)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1.0))


def pixel_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Fraction of pixels whose foreground/background label agrees."""
    pred_b, true_b = np.asarray(pred) != 0, np.asarray(true) != 0
    _check_same_shape(pred_b, true_b)
    if pred_b.size == 0:
        return 1.0
    return float(np.count_nonzero(pred_b == true_b) / pred_b.size)


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    _check_same_shape(a64, b64)
    return np.abs(a64 - b64)


def max_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference (NaN if either input holds NaN)."""
    diff = _abs_diff(a, b)
    return float(diff.max()) if diff.size else 0.0


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (NaN if either input holds NaN)."""
    diff = _abs_diff(a, b)
    return float(diff.mean()) if diff.size else 0.0


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical inputs."""
    diff = _abs_diff(a, b)
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    if math.isnan(mse):
        return math.nan
    if mse == 0.0:
        return math.inf
    return float(10.0 * math.log10(data_range**2 / mse))
