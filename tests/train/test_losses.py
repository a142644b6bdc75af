"""Losses and metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import tfcompat
from harness.train import losses, metrics


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _t(values):
    tf = tfcompat.tf()
    return tf.constant(np.asarray(values, np.float32))


# Two pixels: A has logits (z_bg, z_fg) = (0, 2) and is foreground; B has (1, 0) and is
# background. Softmax CE: A = -log(e^2 / (1 + e^2)) = log(1 + e^-2), B = log(1 + e^-1).
LOGITS = [[[[0.0, 2.0], [1.0, 0.0]]]]  # [1, 1, 2, 2]
MASK = [[[1.0, 0.0]]]  # [1, 1, 2]
CE_A, CE_B = math.log1p(math.exp(-2)), math.log1p(math.exp(-1))


def test_cross_entropy_by_hand() -> None:
    got = float(losses.cross_entropy(_t(LOGITS), _t(MASK)))
    assert got == pytest.approx((CE_A + CE_B) / 2, abs=1e-6)
    assert got == pytest.approx(0.2200948, abs=1e-6)


def test_cross_entropy_accepts_a_channel_axis_and_weights() -> None:
    mask4 = np.asarray(MASK, np.float32)[..., None]
    weights = [[[[3.0], [1.0]]]]
    got = float(losses.cross_entropy(_t(LOGITS), _t(mask4), weights=_t(weights)))
    assert got == pytest.approx((3 * CE_A + CE_B) / 4, abs=1e-6)


def test_focal_by_hand() -> None:
    p_a, p_b = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-1))  # p_t of each pixel
    expected = ((1 - p_a) ** 2 * CE_A + (1 - p_b) ** 2 * CE_B) / 2
    assert float(losses.focal(_t(LOGITS), _t(MASK), gamma=2.0)) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.0122307, abs=1e-6)
    # gamma = 0 is plain cross-entropy.
    assert float(losses.focal(_t(LOGITS), _t(MASK), gamma=0.0)) == pytest.approx(
        (CE_A + CE_B) / 2, abs=1e-6
    )


def test_boundary_loss_is_class_balanced_bce_by_hand() -> None:
    z = [[[[0.0], [2.0]], [[-1.0], [1.0]]]]  # [1, 2, 2, 1]
    band = [[[[1.0], [0.0]], [[0.0], [0.0]]]]  # one positive in four: beta = 0.75
    beta = 0.75
    expected = (
        beta * _softplus(0.0)  # positive pixel: -log(sigmoid(0))
        + (1 - beta) * (_softplus(2.0) + _softplus(-1.0) + _softplus(1.0))  # -log(1 - sigmoid)
    ) / 4
    assert float(losses.boundary_loss(_t(z), _t(band))) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.3645558, abs=1e-6)


def test_band_cross_entropy_only_counts_the_band() -> None:
    band = [[[[0.0], [1.0]]]]  # only pixel B is in the band
    got = float(losses.band_cross_entropy(_t(LOGITS), _t(MASK), _t(band)))
    assert got == pytest.approx(CE_B, abs=1e-6)


def test_matting_loss_by_hand() -> None:
    # Pixel 1: z = 0 -> a = 0.5, alpha 1, rgb (1, 0, 0.5). Pixel 2: z = ln 3 -> a = 0.75,
    # alpha 0.5, rgb black. L1 alpha = (0.5 + 0.25) / 2; composition = (0.5 + 0 + 0.25) / 6.
    logits = [[[[0.0, 0.0], [0.0, math.log(3.0)]]]]
    alpha = [[[[1.0], [0.5]]]]
    rgb = [[[[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]]]]
    got = float(losses.matting_loss(_t(logits), _t(alpha), _t(rgb)))
    assert got == pytest.approx(0.375 + 0.125, abs=1e-6)


def test_boundary_band_surrounds_canny_edges() -> None:
    mask = np.zeros((1, 20, 20), np.uint8)
    mask[0, 5:15, 5:15] = 1
    band = losses.boundary_band(mask, (1, 5))[0]
    assert set(np.unique(band)) == {0.0, 0.5, 1.0}
    edge = band == 1.0  # thickness 1: the Canny edge itself, a ring around the square
    ys, xs = np.nonzero(edge)
    assert 30 <= edge.sum() <= 44
    assert ys.min() >= 4 and ys.max() <= 15 and xs.min() >= 4 and xs.max() <= 15
    assert band[10, 10] == 0 and band[0, 0] == 0  # centre and far background
    # Thickness 5 grows the band by 2 pixels on each side of the edge, no more.
    wide = band > 0
    assert wide[2:18, 2:18].sum() == wide.sum()
    assert not wide[8:12, 8:12].any()


def test_thicknesses_scale_with_input_size() -> None:
    assert losses.thicknesses_for(128) == (3, 5, 9)
    assert losses.thicknesses_for(256) == (7, 11, 19)
    assert all(t % 2 == 1 for t in losses.thicknesses_for(200))


def test_metrics_by_hand() -> None:
    pred = np.array([[1, 1, 0, 0]])
    truth = np.array([[1, 0, 1, 0]])
    assert metrics.iou(pred, truth) == pytest.approx(1 / 3)
    assert metrics.pixel_accuracy(pred, truth) == pytest.approx(0.5)
    assert metrics.iou(np.zeros(4), np.zeros(4)) == 1.0
    logits = np.stack([np.zeros(4), np.where(pred[0] > 0, 1.0, -1.0)], axis=-1)[None, None]
    c = metrics.Counts(*metrics.counts(_t(logits), _t(truth[None])).numpy().tolist())
    assert (c.intersection, c.union, c.correct, c.total) == (1, 3, 2, 4)
    assert c.iou == pytest.approx(1 / 3) and c.accuracy == pytest.approx(0.5)
    assert (c + c).iou == pytest.approx(1 / 3)
