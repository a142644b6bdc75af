"""Augmentations from the seed project, as batched TensorFlow ops for a tf.data pipeline.

Geometric augmentations (flips, rotate + scale) move the image and its label planes (mask,
alpha matte) together: they are concatenated and resampled by one op, so they cannot drift
apart. Photometric ones touch only the RGB channels (never the prior-mask channel of a
4-channel input, never the labels). Occlusion paints a random patch over the image and
leaves the mask alone: the person is still there behind it.

Every augmentation draws from its own stateless seed split from the batch seed, so switching
one off does not change what the others do, and a (seed, epoch, batch) always gives the same
result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from harness import tfcompat
from harness.errors import UsageError


@dataclass(frozen=True)
class Augmentation:
    name: str
    probability: float  # per sample
    geometric: bool
    summary: str


AUGMENTATIONS: dict[str, Augmentation] = {
    a.name: a
    for a in (
        Augmentation("flip-h", 0.5, True, "mirror left-right"),
        Augmentation("flip-v", 0.1, True, "flip upside down"),
        Augmentation("rotate-scale", 0.6, True, "rotate +-20 deg, scale 0.8-1.25, shift +-6%"),
        Augmentation("add", 0.3, False, "add one value in -40..40 to every pixel"),
        Augmentation("add-elementwise", 0.2, False, "add per-pixel noise in -20..20"),
        Augmentation("gamma", 0.3, False, "gamma curve, gamma 0.6-1.6"),
        Augmentation("mean-blur", 0.1, False, "3x3 box blur"),
        Augmentation("median-blur", 0.1, False, "3x3 median blur"),
        Augmentation("gaussian-blur", 0.1, False, "5x5 Gaussian blur, sigma 1"),
        Augmentation("occlusion", 0.2, False, "random patch (10-35% of each side) over the image"),
    )
}
ORDER: tuple[str, ...] = tuple(AUGMENTATIONS)  # the order they are applied in


def parse(spec: str | None, *, disabled: bool = False) -> frozenset[str]:
    """``--augment`` value: ``all`` (default), ``none``, or a comma-separated list of names."""
    if disabled:
        return frozenset()
    if spec is None or spec.strip().lower() == "all":
        return frozenset(ORDER)
    if spec.strip().lower() == "none":
        return frozenset()
    names = [part.strip() for part in spec.split(",") if part.strip()]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise UsageError(
            f"unknown augmentation(s) {', '.join(unknown)}; choose from: {', '.join(ORDER)}, all, none"
        )
    return frozenset(names)


def _uniform(seed, shape, low: float, high: float):
    tf = tfcompat.tf()
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def _flags(seed, batch, probability: float):
    return _uniform(seed, [batch], 0.0, 1.0) < probability


def _subset(x, flags, fn, *params):
    """``fn(x[sel], *(p[sel] for p in params))`` written back into ``x`` where ``flags``:
    costly ops run only on the samples that use them."""
    tf = tfcompat.tf()

    def apply():
        idx = tf.where(flags)
        picked = [tf.gather_nd(p, idx) for p in params]
        return tf.tensor_scatter_nd_update(x, idx, fn(tf.gather_nd(x, idx), *picked))

    # Some kernels mis-shape an empty batch: skip the op when no sample is selected.
    return tf.cond(tf.reduce_any(flags), apply, lambda: x)


def _affine(seed, batch, height, width):
    """Per-sample output->input transforms [B, 8] for ImageProjectiveTransformV3."""
    tf = tfcompat.tf()
    s = tf.random.experimental.stateless_split(seed, 4)
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    angle = _uniform(s[0], [batch], -20.0, 20.0) * (math.pi / 180)
    scale = tf.exp(_uniform(s[1], [batch], math.log(0.8), math.log(1.25)))
    tx = _uniform(s[2], [batch], -0.06, 0.06) * width
    ty = _uniform(s[3], [batch], -0.06, 0.06) * height
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a2 = cx - cos * cx - sin * cy + tx
    b2 = cy + sin * cx - cos * cy + ty
    zeros = tf.zeros_like(cos)
    return tf.stack([cos, sin, a2, -sin, cos, b2, zeros, zeros], axis=1)


def _kernel(values, channels: int):
    tf = tfcompat.tf()
    k = tf.constant(values, tf.float32)
    k = k / tf.reduce_sum(k)
    return tf.tile(k[:, :, None, None], [1, 1, channels, 1])


def _pad(x, r: int):
    tf = tfcompat.tf()
    return tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")


def _box_blur(x):
    tf = tfcompat.tf()
    return tf.nn.depthwise_conv2d(
        _pad(x, 1), _kernel([[1.0] * 3] * 3, x.shape[-1]), [1, 1, 1, 1], "VALID"
    )


def _gaussian_blur(x):
    tf = tfcompat.tf()
    g = [math.exp(-(i * i) / 2.0) for i in range(-2, 3)]
    kernel = [[a * b for b in g] for a in g]
    return tf.nn.depthwise_conv2d(_pad(x, 2), _kernel(kernel, x.shape[-1]), [1, 1, 1, 1], "VALID")


# Median of 9 by a fixed compare-exchange network (Paeth; "opt_med9"): 19 min/max pairs,
# much faster than sorting patches. After it, position 4 holds the median.
# fmt: off
_MED9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8),
         (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))
# fmt: on


def _median_blur(x):
    tf = tfcompat.tf()
    p = _pad(x, 1)
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    v = [p[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)]
    for a, b in _MED9:
        v[a], v[b] = tf.minimum(v[a], v[b]), tf.maximum(v[a], v[b])
    return v[4]


def _occlude(seed, rgb):
    tf = tfcompat.tf()
    batch, h, w = tf.shape(rgb)[0], tf.shape(rgb)[1], tf.shape(rgb)[2]
    s = tf.random.experimental.stateless_split(seed, 4)
    size = _uniform(s[0], [batch, 2], 0.1, 0.35) * tf.cast(tf.stack([h, w]), tf.float32)
    corner = _uniform(s[1], [batch, 2], 0.0, 1.0) * (tf.cast(tf.stack([h, w]), tf.float32) - size)
    colour = _uniform(s[2], [batch, 1, 1, 3], 0.0, 255.0)
    ys = tf.cast(tf.range(h), tf.float32)[None, :, None]
    xs = tf.cast(tf.range(w), tf.float32)[None, None, :]
    inside_y = (ys >= corner[:, 0, None, None]) & (ys < (corner[:, 0] + size[:, 0])[:, None, None])
    inside_x = (xs >= corner[:, 1, None, None]) & (xs < (corner[:, 1] + size[:, 1])[:, None, None])
    return tf.where((inside_y & inside_x)[..., None], colour, rgb)


def augment(images, labels, seed, enabled: Iterable[str]):
    """Augment a batch. ``images`` float32 [B, H, W, C] 0..255 (RGB first), ``labels`` float32
    [B, H, W, K] 0..1 (mask, optional alpha), ``seed`` int [2]. Returns both, same shapes;
    the mask plane comes back bilinearly resampled: threshold it at 0.5.
    """
    tf = tfcompat.tf()
    enabled = frozenset(enabled)
    unknown = enabled - set(AUGMENTATIONS)
    if unknown:
        raise UsageError(f"unknown augmentation(s): {', '.join(sorted(unknown))}")
    images = tf.convert_to_tensor(images, tf.float32)
    labels = tf.convert_to_tensor(labels, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), len(ORDER))
    seed_of = dict(zip(ORDER, tf.unstack(seeds), strict=True))
    batch = tf.shape(images)[0]
    channels = images.shape[-1]

    stack = tf.concat([images, labels], axis=-1)
    for name, axis in (("flip-h", 2), ("flip-v", 1)):
        if name in enabled:
            flip = _flags(seed_of[name], batch, AUGMENTATIONS[name].probability)
            stack = tf.where(flip[:, None, None, None], tf.reverse(stack, [axis]), stack)
    if "rotate-scale" in enabled:
        s = tf.random.experimental.stateless_split(seed_of["rotate-scale"], 2)
        shape = tf.shape(stack)
        transforms = _affine(s[1], batch, shape[1], shape[2])

        def warp(x, t):
            return tf.raw_ops.ImageProjectiveTransformV3(
                images=x,
                transforms=t,
                output_shape=shape[1:3],
                fill_value=0.0,
                interpolation="BILINEAR",
                fill_mode="NEAREST",
            )

        flags = _flags(s[0], batch, AUGMENTATIONS["rotate-scale"].probability)
        stack = _subset(stack, flags, warp, transforms)
    images, labels = stack[..., :channels], stack[..., channels:]

    rgb, extra = images[..., :3], images[..., 3:]
    if "add" in enabled:
        s = tf.random.experimental.stateless_split(seed_of["add"], 2)
        on = tf.cast(_flags(s[0], batch, AUGMENTATIONS["add"].probability), tf.float32)
        rgb = rgb + (_uniform(s[1], [batch], -40.0, 40.0) * on)[:, None, None, None]
    if "add-elementwise" in enabled:
        s = tf.random.experimental.stateless_split(seed_of["add-elementwise"], 2)
        on = tf.cast(_flags(s[0], batch, AUGMENTATIONS["add-elementwise"].probability), tf.float32)
        noise = _uniform(s[1], tf.concat([tf.shape(rgb)[:3], [1]], 0), -20.0, 20.0)
        rgb = rgb + noise * on[:, None, None, None]
    rgb = tf.clip_by_value(rgb, 0.0, 255.0)
    if "gamma" in enabled:
        s = tf.random.experimental.stateless_split(seed_of["gamma"], 2)
        on = tf.cast(_flags(s[0], batch, AUGMENTATIONS["gamma"].probability), tf.float32)
        gamma = tf.exp(_uniform(s[1], [batch], math.log(0.6), math.log(1.6)) * on)
        rgb = _subset(
            rgb, on > 0, lambda x, g: 255.0 * tf.pow(x / 255.0, g[:, None, None, None]), gamma
        )
    for name, fn in (
        ("mean-blur", _box_blur),
        ("median-blur", _median_blur),
        ("gaussian-blur", _gaussian_blur),
    ):
        if name in enabled:
            rgb = _subset(rgb, _flags(seed_of[name], batch, AUGMENTATIONS[name].probability), fn)
    if "occlusion" in enabled:
        s = tf.random.experimental.stateless_split(seed_of["occlusion"], 2)
        flags = _flags(s[0], batch, AUGMENTATIONS["occlusion"].probability)
        rgb = _subset(rgb, flags, lambda x: _occlude(s[1], x))
    images = tf.concat([rgb, extra], axis=-1) if channels > 3 else rgb
    return tf.clip_by_value(images, 0.0, 255.0), labels
