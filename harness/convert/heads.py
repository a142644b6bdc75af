"""Heads: exact re-expressions of the trained 2-channel logits ``z = [z_bg, z_fg]``.

Each head is a registry entry with the same three faces:

- ``apply_tf(head, z, fg)``: the TF ops appended to the network right before conversion
  (built in memory, never saved, so nothing here has to serialise);
- ``apply_numpy(head, z, fg)``: the same expression in float64 numpy, the float reference
  the converted variants are measured against;
- ``output_semantics(head)``: what the output means (manifest, decoding).

| head       | output                    | TFLite ops                        | GPU           |
|------------|---------------------------|-----------------------------------|---------------|
| softmax    | [1,H,W,2] probabilities   | SOFTMAX (beta 1, channel axis)    | yes           |
| sigmoid    | [1,H,W,1] P(fg)           | CONV_2D 1x1 [-1,+1] + LOGISTIC    | yes           |
| sigsoftmax | [1,H,W,2] probabilities   | MIN/ABS/NEG/EXP/ADD/LOG/SUB/ADD + SOFTMAX | EXP/LOG caveat |
| logits     | [1,H,W,2] logits          | none                              | yes           |
| argmax     | [1,H,W] uint8 mask        | ARG_MAX + CAST                    | CPU           |

``sigmoid(z_fg - z_bg)`` equals softmax's foreground probability exactly in real arithmetic.
The difference is a 1x1 convolution with fixed weights (-1 for background, +1 for foreground,
no bias): products by +-1 are exact, so it rounds like one subtraction, and it is one op every
delegate takes. Sigsoftmax uses the stable ``w = z + log_sigmoid(z)`` with
``log_sigmoid(z) = min(z, 0) - log(1 + exp(-|z|))`` (no overflow for any z), then softmax. Its
probabilities differ from softmax's, but ``z + log_sigmoid(z)`` is increasing in z, so its mask
is the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.convert.specs import Activation, Semantics
from harness.convert.variants import Head

__all__ = ["HEAD_SEMANTICS", "apply_numpy", "apply_tf", "float_fg_prob", "output_semantics"]

HEAD_SEMANTICS: dict[Head, tuple[Semantics, Activation, int]] = {
    # head: (semantics, activation, output channels)
    Head.SOFTMAX: (Semantics.CLASS_PROBABILITIES, Activation.SOFTMAX, 2),
    Head.SIGMOID: (Semantics.FOREGROUND_PROBABILITY, Activation.SIGMOID, 1),
    Head.SIGSOFTMAX: (Semantics.CLASS_PROBABILITIES, Activation.SIGSOFTMAX, 2),
    Head.LOGITS: (Semantics.LOGITS, Activation.NONE, 2),
    Head.ARGMAX: (Semantics.MASK, Activation.ARGMAX, 1),
}


def output_semantics(head: Head) -> tuple[Semantics, Activation, int]:
    return HEAD_SEMANTICS[Head(head)]


def apply_tf(head: Head, z: Any, fg: int = 1) -> Any:
    """Append ``head`` to the logits tensor ``z`` ([1, H, W, 2], float32) with TF ops."""
    from harness import tfcompat

    tf = tfcompat.tf()
    head = Head(head)
    if head is Head.LOGITS:
        return z
    if head is Head.SOFTMAX:
        return tf.nn.softmax(z, axis=-1)
    if head is Head.SIGMOID:
        w = np.full((1, 1, 2, 1), -1.0, dtype=np.float32)
        w[0, 0, fg, 0] = 1.0
        diff = tf.nn.conv2d(z, tf.constant(w), strides=1, padding="VALID")
        return tf.math.sigmoid(diff)
    if head is Head.SIGSOFTMAX:
        log_sig = tf.minimum(z, 0.0) - tf.math.log(1.0 + tf.exp(-tf.abs(z)))
        return tf.nn.softmax(z + log_sig, axis=-1)
    if head is Head.ARGMAX:
        idx = tf.argmax(z, axis=-1, output_type=tf.int32)
        if fg == 0:  # report 1 = foreground whatever the channel order
            idx = 1 - idx
        return tf.cast(idx, tf.uint8)
    raise AssertionError(head)  # unreachable: Head is closed


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def apply_numpy(head: Head, z: np.ndarray, fg: int = 1) -> np.ndarray:
    """The float64 reference of ``head`` on logits ``z`` ``[..., 2]`` (same shapes as TFLite)."""
    head = Head(head)
    z = np.asarray(z, dtype=np.float64)
    bg = 1 - fg
    if head is Head.LOGITS:
        return z
    if head is Head.SOFTMAX:
        return _softmax(z)
    if head is Head.SIGMOID:
        return 1.0 / (1.0 + np.exp(-(z[..., fg : fg + 1] - z[..., bg : bg + 1])))
    if head is Head.SIGSOFTMAX:
        log_sig = np.minimum(z, 0.0) - np.log1p(np.exp(-np.abs(z)))
        return _softmax(z + log_sig)
    if head is Head.ARGMAX:
        return (z[..., fg] > z[..., bg]).astype(np.uint8)
    raise AssertionError(head)


def float_fg_prob(head: Head, z: np.ndarray, fg: int = 1) -> np.ndarray | None:
    """Foreground probability ``[..., H, W]`` the head would output in exact arithmetic.

    None for argmax (a mask has no probability). For softmax, sigmoid and logits (decoded as
    ``sigmoid(z_fg - z_bg)``) this is softmax's P(fg); for sigsoftmax, its own P(fg).
    """
    head = Head(head)
    if head is Head.ARGMAX:
        return None
    if head is Head.SIGSOFTMAX:
        return apply_numpy(head, z, fg)[..., fg]
    return apply_numpy(Head.SOFTMAX, z, fg)[..., fg]
