"""Fold BatchNormalization into the convolution before it, in a tf_keras functional model.

``Conv2D``/``DepthwiseConv2D`` (linear activation, one consumer) followed by
``BatchNormalization`` over the channel axis computes, in inference mode,

    y = gamma * (conv(x, W) + b - mean) / sqrt(var + eps) + beta

which is ``conv(x, W * s) + (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)`` per
output channel. The folded model has no BatchNormalization left after a convolution, so a
quantization-aware model built from it quantizes the weights the int8 graph will really hold
and converts to the same ops as post-training quantization (the TFLite converter folds BN
itself when there is no fake-quant in the way; a QAT graph has one on the unfolded weights, so
it cannot, and keeps a MUL and an ADD per BN).

The model is rewritten through its config (``get_config`` / ``from_config``): BN layers that
fold disappear, their consumers read the convolution instead; every other layer keeps its
name and weights. Pure TF-free arithmetic lives in :func:`fold_weights`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from harness import tfcompat
from harness.errors import ConversionFailed

__all__ = ["fold_batchnorm", "fold_weights", "fuse_relus"]

_CONVS = ("Conv2D", "DepthwiseConv2D")


def fold_weights(
    kind: str,
    kernel: np.ndarray,
    bias: np.ndarray | None,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Folded ``(kernel, bias)`` of ``kind`` (``Conv2D`` or ``DepthwiseConv2D``) + BN."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    k = np.asarray(kernel, np.float64)
    # Conv2D kernels are [kh, kw, in, out]; depthwise ones [kh, kw, in, multiplier], output
    # channel c = in * multiplier + m
    depthwise = kind == "DepthwiseConv2D"
    k = k * (scale.reshape(k.shape[2], k.shape[3]) if depthwise else scale)
    b = np.zeros_like(scale) if bias is None else np.asarray(bias, np.float64)
    new_bias = (b - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64)
    return k.astype(np.float32), new_bias.astype(np.float32)


def _inbound_names(layer_cfg: dict[str, Any]) -> list[str]:
    names = []
    for node in layer_cfg.get("inbound_nodes", []):
        for ref in node:
            names.append(ref[0])
    return names


def _foldable(config: dict[str, Any], model: Any) -> dict[str, str]:
    """``{bn_name: conv_name}`` for every BN that folds into its input convolution."""
    layers = {lc["name"]: lc for lc in config["layers"]}
    consumers = _consumer_counts(config)
    pairs: dict[str, str] = {}
    for lc in config["layers"]:
        if lc["class_name"] != "BatchNormalization" or len(lc.get("inbound_nodes", [])) != 1:
            continue
        ins = _inbound_names(lc)
        if len(ins) != 1 or ins[0] not in layers:
            continue
        conv = layers[ins[0]]
        rank = len(model.get_layer(lc["name"]).input_shape)
        axis = lc["config"].get("axis", -1)
        axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
        if (
            conv["class_name"] in _CONVS
            and conv["config"].get("activation", "linear") == "linear"
            and len(conv.get("inbound_nodes", [])) == 1
            and consumers.get(conv["name"], 0) == 1
            and axis in (-1, rank - 1)
        ):
            pairs[lc["name"]] = conv["name"]
    return pairs


def _relu_activation(lc: dict[str, Any]) -> str | None:
    """``relu``/``relu6`` if the ReLU layer config is a plain one a conv can fuse."""
    cfg = lc["config"]
    if lc["class_name"] != "ReLU" or cfg.get("negative_slope", 0.0) or cfg.get("threshold", 0.0):
        return None
    max_value = cfg.get("max_value")
    if max_value is None:
        return "relu"
    return "relu6" if float(max_value) == 6.0 else None


def _fusable_relus(config: dict[str, Any]) -> dict[str, str]:
    """``{relu_name: conv_name}`` for ReLU layers that can become the conv's activation."""
    layers = {lc["name"]: lc for lc in config["layers"]}
    consumers = _consumer_counts(config)
    pairs: dict[str, str] = {}
    for lc in config["layers"]:
        ins = _inbound_names(lc)
        if _relu_activation(lc) is None or len(ins) != 1 or len(lc["inbound_nodes"]) != 1:
            continue
        conv = layers.get(ins[0])
        if (
            conv is not None
            and conv["class_name"] in _CONVS
            and conv["config"].get("activation", "linear") == "linear"
            and len(conv.get("inbound_nodes", [])) == 1
            and consumers.get(conv["name"], 0) == 1
        ):
            pairs[lc["name"]] = conv["name"]
    return pairs


def _consumer_counts(config: dict[str, Any]) -> dict[str, int]:
    consumers: dict[str, int] = {}
    for lc in config["layers"]:
        for name in _inbound_names(lc):
            consumers[name] = consumers.get(name, 0) + 1
    for out in config.get("output_layers", []):
        consumers[out[0]] = consumers.get(out[0], 0) + 1
    return consumers


def _rewire(
    config: dict[str, Any], pairs: dict[str, str], activations: dict[str, str] | None = None
) -> dict[str, Any]:
    """Drop the layers in ``pairs`` (removed -> conv it follows); their consumers read the conv.

    ``activations``: conv name -> activation it takes over from a removed ReLU.
    """
    config = copy.deepcopy(config)
    activations = activations or {}
    config["layers"] = [lc for lc in config["layers"] if lc["name"] not in pairs]
    for lc in config["layers"]:
        if lc["name"] in activations:
            lc["config"]["activation"] = activations[lc["name"]]
        elif lc["name"] in pairs.values():
            lc["config"]["use_bias"] = True
        for node in lc.get("inbound_nodes", []):
            for ref in node:
                if ref[0] in pairs:  # the BN's output is the conv's only output
                    ref[0], ref[1], ref[2] = pairs[ref[0]], 0, 0
    for out in config.get("output_layers", []):
        if out[0] in pairs:
            out[0], out[1], out[2] = pairs[out[0]], 0, 0
    return config


def fold_batchnorm(model: Any) -> tuple[Any, int]:
    """``(folded copy of model, number of BN layers folded)``; ``model`` is not changed.

    BN layers that do not follow a foldable convolution stay (the converter handles them).
    """
    keras = tfcompat.keras()
    try:
        config = model.get_config()
        if "layers" not in config or "input_layers" not in config:
            raise ValueError("not a functional model")
        pairs = _foldable(config, model)
        if not pairs:
            return model, 0
        folded = keras.Model.from_config(_rewire(config, pairs))
    except Exception as exc:
        raise ConversionFailed(
            f"BatchNormalization folding failed: {type(exc).__name__}: {exc}"[:300]
        ) from exc
    bn_of = {conv: bn for bn, conv in pairs.items()}
    for layer in folded.layers:
        src = model.get_layer(layer.name)
        if layer.name not in bn_of:
            layer.set_weights(src.get_weights())
            continue
        bn = model.get_layer(bn_of[layer.name])
        kernel = src.get_weights()[0]
        bias = src.get_weights()[1] if src.use_bias else None
        channels = int(bn.moving_mean.shape[0])
        gamma = bn.gamma.numpy() if bn.scale else np.ones(channels, np.float32)
        beta = bn.beta.numpy() if bn.center else np.zeros(channels, np.float32)
        k, b = fold_weights(
            src.__class__.__name__,
            kernel,
            bias,
            gamma,
            beta,
            bn.moving_mean.numpy(),
            bn.moving_variance.numpy(),
            float(bn.epsilon),
        )
        layer.set_weights([k, b])
    return folded, len(pairs)


def fuse_relus(model: Any) -> tuple[Any, int]:
    """Copy of ``model`` where a ReLU/ReLU6 layer right after a linear convolution (its only
    consumer) becomes that convolution's ``activation``; ``(model, number fused)``.

    tfmot quantizes ``Conv2D(activation="relu")`` as TFLite runs it (int8 weights, one
    quantized output after the fused activation), but a separate ``Conv2D`` -> ``ReLU`` pair
    gets a no-op config on the convolution (its weights are then not fake-quantized at all).
    Layer names of the convolutions are kept; the fused ReLU layers disappear.
    """
    keras = tfcompat.keras()
    try:
        config = model.get_config()
        pairs = _fusable_relus(config)
        if not pairs:
            return model, 0
        layers = {lc["name"]: lc for lc in config["layers"]}
        activations = {conv: _relu_activation(layers[relu]) for relu, conv in pairs.items()}
        fused = keras.Model.from_config(_rewire(config, pairs, activations))
    except Exception as exc:
        raise ConversionFailed(
            f"activation fusing failed: {type(exc).__name__}: {exc}"[:300]
        ) from exc
    for layer in fused.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    return fused, len(pairs)
