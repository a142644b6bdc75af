"""Segmentation metrics: foreground IoU and pixel accuracy.

``counts`` sums (intersection, union, correct, total) over a batch so a whole validation set
can be accumulated and divided once: val IoU is the foreground IoU over all val pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness import tfcompat


@dataclass(frozen=True)
class Counts:
    intersection: float = 0.0
    union: float = 0.0
    correct: float = 0.0
    total: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.intersection + other.intersection,
            self.union + other.union,
            self.correct + other.correct,
            self.total + other.total,
        )

    @property
    def iou(self) -> float:
        """Foreground IoU; 1.0 when neither prediction nor truth has any foreground."""
        return self.intersection / self.union if self.union else 1.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Foreground IoU of two binary masks (any shape)."""
    p, t = np.asarray(pred) > 0.5, np.asarray(truth) > 0.5
    union = np.logical_or(p, t).sum()
    return float(np.logical_and(p, t).sum() / union) if union else 1.0


def pixel_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = np.asarray(pred) > 0.5, np.asarray(truth) > 0.5
    return float((p == t).mean())


def counts(logits, mask):
    """TF: float32 [4] = (intersection, union, correct, total) of argmax(logits) vs mask."""
    tf = tfcompat.tf()
    pred = logits[..., 1] > logits[..., 0]
    mask = tf.cast(mask, tf.float32)
    truth = (mask[..., 0] if mask.shape.rank == 4 else mask) > 0.5
    inter = tf.reduce_sum(tf.cast(pred & truth, tf.float32))
    union = tf.reduce_sum(tf.cast(pred | truth, tf.float32))
    correct = tf.reduce_sum(tf.cast(tf.equal(pred, truth), tf.float32))
    total = tf.cast(tf.size(truth), tf.float32)
    return tf.stack([inter, union, correct, total])
