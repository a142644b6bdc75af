"""Losses on logits, and the boundary band they use.

Shapes: ``logits`` [B, H, W, 2] = [z_bg, z_fg]; ``mask`` [B, H, W] or [B, H, W, 1] in {0, 1};
``band`` and ``alpha`` [B, H, W, 1] in 0..1. Every loss returns a scalar.

Two-class softmax cross-entropy equals binary cross-entropy on ``z = z_fg - z_bg``, and the
foreground probability is ``sigmoid(z)``: the formulas below use that.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from harness import tfcompat

DEFAULT_THICKNESSES = (3, 5, 9)  # pixels at 128 x 128; scaled with the input size


def thicknesses_for(size: int, base: Sequence[int] = DEFAULT_THICKNESSES) -> tuple[int, ...]:
    """Band thicknesses (odd pixel counts) for an input size, scaled from 128 px."""
    return tuple(max(1, round(t * size / 128)) | 1 for t in base)


def boundary_band(masks: np.ndarray, thicknesses: Sequence[int]) -> np.ndarray:
    """Soft boundary targets float32 [n, H, W] in 0..1 around the masks' Canny edges.

    For each thickness ``t`` the edges are dilated by a ``t`` x ``t`` ellipse; the target is
    the mean over thicknesses: 1 on the edge, falling off in steps with distance.
    """
    masks = np.asarray(masks)
    if masks.ndim == 4:
        masks = masks[..., 0]
    out = np.zeros(masks.shape, np.float32)
    kernels = [cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (t, t)) for t in thicknesses]
    for i, mask in enumerate(masks):
        edges = cv2.Canny((mask > 0.5).astype(np.uint8) * 255, 100, 200)
        for kernel in kernels:
            out[i] += cv2.dilate(edges, kernel) > 0
    return out / max(1, len(thicknesses))


def _mask(mask, like):
    tf = tfcompat.tf()
    mask = tf.cast(mask, like.dtype)
    return mask[..., 0] if mask.shape.rank == 4 else mask


def _weighted_mean(values, weights):
    tf = tfcompat.tf()
    if weights is None:
        return tf.reduce_mean(values)
    weights = tf.cast(weights, values.dtype)
    if weights.shape.rank == 4:
        weights = weights[..., 0]
    return tf.reduce_sum(values * weights) / tf.maximum(tf.reduce_sum(weights), 1e-6)


def fg_logit(logits):
    """``z_fg - z_bg``: the logit of the foreground probability."""
    return logits[..., 1] - logits[..., 0]


def cross_entropy(logits, mask, weights=None):
    """Softmax cross-entropy, averaged over pixels (weighted mean when ``weights`` is given)."""
    tf = tfcompat.tf()
    z = fg_logit(logits)
    y = _mask(mask, z)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)
    return _weighted_mean(ce, weights)


def focal(logits, mask, gamma: float = 2.0, weights=None):
    """Focal loss ``-(1 - p_t)^gamma * log(p_t)`` (Lin et al. 2017), mean over pixels."""
    tf = tfcompat.tf()
    z = fg_logit(logits)
    y = _mask(mask, z)
    signed = (2.0 * y - 1.0) * z  # p_t = sigmoid(signed)
    log_pt = -tf.nn.softplus(-signed)
    loss = -tf.pow(1.0 - tf.exp(log_pt), gamma) * log_pt
    return _weighted_mean(loss, weights)


def boundary_loss(boundary_logits, band, max_beta: float = 0.99):
    """Class-balanced (HED) weighted BCE of a boundary head against the band target.

    ``beta = 1 - mean(band)`` (at least 0.5, at most ``max_beta``) weighs the rare positive
    pixels, ``1 - beta`` the negatives: ``mean(beta*y*softplus(-z) + (1-beta)*(1-y)*softplus(z))``.
    """
    tf = tfcompat.tf()
    z = boundary_logits[..., 0] if boundary_logits.shape.rank == 4 else boundary_logits
    y = _mask(band, z)
    beta = tf.stop_gradient(tf.clip_by_value(1.0 - tf.reduce_mean(y), 0.5, max_beta))
    loss = beta * y * tf.nn.softplus(-z) + (1.0 - beta) * (1.0 - y) * tf.nn.softplus(z)
    return tf.reduce_mean(loss)


def band_cross_entropy(logits, mask, band):
    """Segmentation BCE weighted by the boundary band: the boundary loss for nets without a
    boundary head. ``sum(band * bce) / sum(band)``."""
    return cross_entropy(logits, mask, weights=band)


def matting_loss(logits, alpha, rgb):
    """Alpha L1 plus composition L1 (on black) for an alpha matte.

    ``a = sigmoid(z_fg - z_bg)``; ``mean|a - alpha| + mean|a*rgb - alpha*rgb|`` with ``rgb``
    in 0..1 [B, H, W, 3] and ``alpha`` 0..1 [B, H, W] or [B, H, W, 1].
    """
    tf = tfcompat.tf()
    a = tf.sigmoid(fg_logit(logits))
    alpha = _mask(alpha, a)
    l_alpha = tf.reduce_mean(tf.abs(a - alpha))
    rgb = tf.cast(rgb, a.dtype)
    l_comp = tf.reduce_mean(tf.abs((a - alpha)[..., None] * rgb))
    return l_alpha + l_comp


def segmentation_loss(name: str, logits, mask):
    if name == "focal":
        return focal(logits, mask)
    return cross_entropy(logits, mask)
