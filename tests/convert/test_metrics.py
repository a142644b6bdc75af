from __future__ import annotations

import math

import numpy as np
import pytest

from harness import metrics


def test_iou_and_accuracy() -> None:
    a = np.array([[1, 1, 0, 0]])
    b = np.array([[1, 0, 1, 0]])
    assert metrics.iou(a, b) == pytest.approx(1 / 3)
    assert metrics.iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    assert metrics.pixel_accuracy(a, b) == 0.5
    per = metrics.iou_per_image(np.stack([a, a]), np.stack([b, a]))
    assert per.tolist() == pytest.approx([1 / 3, 1.0])
    with pytest.raises(ValueError):
        metrics.iou(a, b[:, :2])


def test_errors_and_psnr() -> None:
    a = np.array([0.0, 0.5, 1.0])
    b = np.array([0.0, 0.25, 1.0])
    assert metrics.max_abs_error(a, b) == 0.25
    assert metrics.mean_abs_error(a, b) == pytest.approx(0.25 / 3)
    assert metrics.psnr(a, a) == math.inf
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(1 / (0.0625 / 3)))
    assert math.isnan(metrics.max_abs_error(np.array([np.nan]), np.array([0.0])))
