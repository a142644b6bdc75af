"""Architectures: a registry of segmentation networks that emit 2-channel logits.

Every network is built from built-in tf_keras layers the TFLite GPU delegate runs (Conv2D,
DepthwiseConv2D, BatchNormalization, ReLU/ReLU6, Add, Concatenate, AveragePooling2D,
bilinear UpSampling2D), so ``model.keras`` loads without ``custom_objects``. Every layer has
a fixed name, which is what fine-tuning matches weights by.

``build`` returns two models that share layers: ``inference`` (one output, logits
[N, H, W, 2] = [z_bg, z_fg]) and ``training`` (the logits plus, for archs that have one, the
boundary head's logits [N, H, W, 1], used only by the boundary loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness import tfcompat
from harness.errors import UsageError

MIN_INPUT_SIZE = 128
MAX_INPUT_SIZE = 512


@dataclass(frozen=True)
class Arch:
    """One registry entry. ``builder(inputs, width) -> (logits, boundary_logits | None)``."""

    name: str
    summary: str
    stride: int  # input height/width must be a multiple of this
    boundary_head: bool
    default_width: float
    builder: Callable[[Any, float], tuple[Any, Any]]


@dataclass(frozen=True)
class Nets:
    arch: Arch
    inference: Any  # tf_keras.Model: inputs -> logits
    training: Any  # tf_keras.Model: inputs -> [logits] or [logits, boundary_logits]


def _divisible(value: float, divisor: int) -> int:
    """Round channels to a multiple of ``divisor`` without dropping below 90% (MobileNet rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


class _Layers:
    """Small builders over tf_keras layers with deterministic names."""

    def __init__(self) -> None:
        self.k = tfcompat.keras()
        self.L = self.k.layers

    def conv(self, x, filters: int, kernel: int, stride: int, name: str, act: str | None = "relu"):
        x = self.L.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
        )(x)
        x = self.L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return self.act(x, act, name)

    def dw(self, x, stride: int, name: str, act: str | None = "relu"):
        x = self.L.DepthwiseConv2D(
            3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw"
        )(x)
        x = self.L.BatchNormalization(momentum=0.9, name=f"{name}_dwbn")(x)
        return self.act(x, act, f"{name}_dw")

    def act(self, x, act: str | None, name: str):
        if act == "relu":
            return self.L.ReLU(name=f"{name}_relu")(x)
        if act == "relu6":
            return self.L.ReLU(6.0, name=f"{name}_relu6")(x)
        return x

    def separable(self, x, filters: int, stride: int, name: str, act: str | None = "relu"):
        x = self.dw(x, stride, name)
        return self.conv(x, filters, 1, 1, f"{name}_pw", act)

    def up(self, x, factor: int, name: str):
        return self.L.UpSampling2D(factor, interpolation="bilinear", name=name)(x)

    def head(self, x, channels: int, name: str):
        return self.L.Conv2D(channels, 1, padding="same", name=name)(x)


# --------------------------------------------------------------------------- sinet-lite


def _s2_block(b: _Layers, x, pool: int, name: str):
    """SINet-style multi-scale block: a 3x3 depthwise path and a pooled one, fused by 1x1."""
    c = x.shape[-1]
    local = b.dw(x, 1, f"{name}_a", act=None)
    wide = b.L.AveragePooling2D(pool, name=f"{name}_pool")(x)
    wide = b.dw(wide, 1, f"{name}_b", act=None)
    wide = b.up(wide, pool, f"{name}_up")
    y = b.L.Concatenate(name=f"{name}_cat")([local, wide])
    y = b.L.ReLU(name=f"{name}_catrelu")(y)
    y = b.conv(y, c, 1, 1, f"{name}_fuse", act=None)
    y = b.L.Add(name=f"{name}_add")([x, y])
    return b.L.ReLU(name=f"{name}_out")(y)


def _sinet_lite(inputs, width: float):
    b = _Layers()

    def ch(c: int) -> int:
        return _divisible(c * width, 4)

    f2 = b.conv(inputs, ch(16), 3, 2, "stem")  # 1/2
    x = b.separable(f2, ch(24), 2, "down4")  # 1/4
    f4 = _s2_block(b, x, 2, "enc4_1")
    x = b.separable(f4, ch(48), 2, "down8")  # 1/8
    x = _s2_block(b, x, 2, "enc8_1")
    f8 = _s2_block(b, x, 4, "enc8_2")
    x = b.separable(f8, ch(96), 2, "down16")  # 1/16
    for i in range(3):
        x = _s2_block(b, x, 2, f"enc16_{i + 1}")
    y = b.conv(x, ch(48), 1, 1, "dec8_in")
    y = b.L.Add(name="dec8_add")([b.up(y, 2, "dec8_up"), f8])
    y = b.separable(y, ch(24), 1, "dec8")
    y = b.L.Add(name="dec4_add")([b.up(y, 2, "dec4_up"), f4])
    y = b.separable(y, ch(16), 1, "dec4")
    y = b.L.Concatenate(name="dec2_cat")([b.up(y, 2, "dec2_up"), f2])
    y = b.separable(y, ch(16), 1, "dec2")
    logits = b.up(b.head(y, 2, "seg_head"), 2, "logits")
    return logits, None


# --------------------------------------------------------------------------- portraitnet

# MobileNetV2 stages: (expansion, channels, repeats, stride)
_MOBILENETV2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _inverted_residual(b: _Layers, x, expansion: int, out: int, stride: int, name: str):
    c = x.shape[-1]
    y = b.conv(x, c * expansion, 1, 1, f"{name}_expand", "relu6") if expansion != 1 else x
    y = b.dw(y, stride, name, "relu6")
    y = b.conv(y, out, 1, 1, f"{name}_project", act=None)
    if stride == 1 and c == out:
        y = b.L.Add(name=f"{name}_add")([x, y])
    return y


def _d_block(b: _Layers, x, out: int, name: str):
    """PortraitNet decoder block: two depthwise-separable convs plus a 1x1 shortcut."""
    y = b.separable(x, out, 1, f"{name}_1")
    y = b.separable(y, out, 1, f"{name}_2", act=None)
    short = b.conv(x, out, 1, 1, f"{name}_short", act=None)
    return b.L.ReLU(name=f"{name}_out")(b.L.Add(name=f"{name}_add")([y, short]))


def _portraitnet(inputs, width: float):
    b = _Layers()

    def ch(c: int) -> int:
        return _divisible(c * width, 8)

    x = b.conv(inputs, ch(32), 3, 2, "stem", "relu6")
    taps = {}
    scale = 2
    for s, (t, c, n, stride) in enumerate(_MOBILENETV2):
        for i in range(n):
            x = _inverted_residual(b, x, t, ch(c), stride if i == 0 else 1, f"block{s}_{i}")
        scale *= stride
        taps[scale] = x  # the last stage at each scale: 1/2 16, 1/4 24, 1/8 32, 1/16 96, 1/32 320
    y = taps[32]
    for level, out in ((16, 96), (8, 32), (4, 24), (2, 16)):
        y = _d_block(b, y, ch(out), f"dec{level}")
        y = b.up(y, 2, f"dec{level}_up")
        y = b.L.Add(name=f"dec{level}_skip")(
            [y, b.conv(taps[level], ch(out), 1, 1, f"dec{level}_lat", act=None)]
        )
    y = _d_block(b, y, 8, "dec1")
    y = b.up(y, 2, "dec1_up")
    return b.head(y, 2, "logits"), b.head(y, 1, "boundary")


ARCHS: dict[str, Arch] = {
    arch.name: arch
    for arch in (
        Arch(
            "sinet-lite",
            "ultra-light real-time net (SINet-style multi-scale blocks), ~0.1 M "
            "parameters at width 1.0",
            32,
            False,
            1.0,
            _sinet_lite,
        ),
        Arch(
            "portraitnet",
            "PortraitNet-style encoder-decoder on a MobileNetV2 backbone with "
            "a boundary head (training only), ~2 M parameters",
            32,
            True,
            1.0,
            _portraitnet,
        ),
    )
}


def get_arch(name: str) -> Arch:
    try:
        return ARCHS[name]
    except KeyError:
        raise UsageError(f"unknown arch {name!r}; choose one of: {', '.join(ARCHS)}") from None


def check_input(arch: Arch, size: int, channels: int, width: float) -> None:
    """Raise :class:`UsageError` for an input the arch (or the harness) does not support."""
    if not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE:
        raise UsageError(
            f"--input-size must be between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE}, not {size}"
        )
    if size % arch.stride:
        raise UsageError(
            f"--input-size {size} is not a multiple of {arch.stride}, which {arch.name} needs "
            f"(try {size // arch.stride * arch.stride} or {(size // arch.stride + 1) * arch.stride})"
        )
    if channels not in (3, 4):
        raise UsageError(f"--channels must be 3 (RGB) or 4 (RGB + prior mask), not {channels}")
    if not 0.1 <= width <= 4.0:
        raise UsageError(f"--width must be between 0.1 and 4.0, not {width}")


def build(name: str, input_size: int, channels: int = 3, width: float | None = None) -> Nets:
    """Build ``name`` for square ``input_size`` inputs (any multiple of the arch's stride)."""
    arch = get_arch(name)
    width = arch.default_width if width is None else width
    if input_size % arch.stride or input_size < 2 * arch.stride:
        raise UsageError(f"{arch.name} needs an input size that is a multiple of {arch.stride}")
    keras = tfcompat.keras()
    inputs = keras.Input(shape=(input_size, input_size, channels), name="image")
    logits, boundary = arch.builder(inputs, width)
    inference = keras.Model(inputs, logits, name=arch.name.replace("-", "_"))
    outputs = [logits] if boundary is None else [logits, boundary]
    training = keras.Model(inputs, outputs, name=f"{inference.name}_train")
    return Nets(arch=arch, inference=inference, training=training)


def count_params(model) -> int:
    return int(sum(int(w.shape.num_elements()) for w in model.weights if w.trainable))


LOGIT_LAYERS = ("logits", "seg_head")  # the 2-channel logits convolution (sinet-lite: seg_head)


def scale_logits(model, factor: float) -> None:
    """Multiply ``model``'s logits by ``factor`` in place: the kernel and bias of its last
    2-channel logits convolution (every arch follows it with linear, weightless layers only:
    bilinear upsampling or nothing), so argmax masks are unchanged."""
    if factor == 1.0:
        return
    names = {layer.name for layer in model.layers}
    name = next((n for n in LOGIT_LAYERS if n in names and model.get_layer(n).weights), None)
    if name is None:
        raise UsageError(f"{model.name}: no logits convolution ({', '.join(LOGIT_LAYERS)})")
    layer = model.get_layer(name)
    layer.set_weights([w * factor for w in layer.get_weights()])


def fixed_batch(model, batch: int = 1):
    """A copy of ``model`` with a fixed batch size (``[1, H, W, C]`` for export), same weights."""
    keras = tfcompat.keras()
    shape = model.input_shape
    inputs = keras.Input(batch_shape=(batch, *shape[1:]), name=model.input_names[0])
    clone = keras.models.clone_model(model, input_tensors=inputs)
    clone.set_weights(model.get_weights())
    return clone
