"""``harness import``: a model folder from a Keras network that was not trained here.

Accepts ``.h5``, ``.keras`` (tf_keras, Keras 2) and a Keras SavedModel folder. The network must
have one image input ``[N, H, W, C]`` (C = 3, or 4 with a prior-mask channel) and one per-pixel
output with 1 or 2 channels. Its final activation is stripped to logits:

- a ``Softmax`` layer / ``Activation("softmax"|"sigmoid")`` layer: its input is the logits;
- an activation fused into the last layer (``Conv2D(..., activation="softmax")``): the layer
  is rebuilt with ``activation="linear"`` and the same weights;
- no activation: the output is the logits already.

A 1-channel logit z becomes the 2-class pair ``[z - z, z]`` (``softmax([0, z])[1] =
sigmoid(z)``), so the folder meets the model-folder contract (docs/model-folder.md: 2-channel
logits ``[z_bg, z_fg]``) and ``convert``, ``bench`` and ``diagnose`` use it like a trained one.
``train.json`` records the input size, channels, normalization (flags; else ``null`` with a
warning) and what was stripped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.convert.iospec import UNKNOWN_WARNING, IoOptions
from harness.errors import ModelError, UsageError

__all__ = ["ImportResult", "import_keras"]

_ACTIVATIONS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class ImportResult:
    folder: Path
    train_json: dict[str, Any]
    warnings: tuple[str, ...]


def _load(source: Path) -> Any:
    from harness import tfcompat

    keras = tfcompat.keras()
    if not source.exists():
        raise UsageError(f"no such model: {source}")
    if source.is_file() and source.suffix.lower() not in (".h5", ".hdf5", ".keras"):
        raise UsageError(f"{source}: expected a .h5, .keras file or a SavedModel folder")
    try:
        return keras.models.load_model(str(source), compile=False)
    except Exception as exc:  # tf_keras raises ValueError/OSError/ImportError/zipfile errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{source} cannot be loaded with tf_keras: {first[:200]}") from exc


def _activation_name(layer: Any) -> str | None:
    """softmax/sigmoid if ``layer`` ends in one (a Softmax/Activation layer or a fused one)."""
    cls = type(layer).__name__
    if cls == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None) if act is not None else None
    return name if name in _ACTIVATIONS else None


def _logits(model: Any) -> tuple[Any, str]:
    """(logits tensor, what was stripped) for the model's output."""
    layer = model.layers[-1]
    act = _activation_name(layer)
    if act is None:
        return model.outputs[0], "none"
    if type(layer).__name__ in ("Softmax", "Activation"):
        if type(layer).__name__ == "Softmax" and getattr(layer, "axis", -1) not in (-1, 3):
            raise ModelError("the final softmax is not over the channel axis")
        return layer.input, act
    config = layer.get_config()
    config["activation"] = "linear"
    config["name"] = f"{layer.name}_logits"
    clone = type(layer).from_config(config)
    out = clone(layer.input)
    clone.set_weights(layer.get_weights())
    return out, act


def _check_shapes(model: Any, where: str) -> tuple[int, int, int]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{where}: one input and one output expected")
    shape = tuple(model.input_shape)
    if len(shape) != 4 or None in shape[1:] or shape[3] not in (3, 4):
        raise ModelError(f"{where}: input {list(shape)} is not [N, H, W, 3 or 4] with a fixed size")
    out = tuple(model.output_shape)
    if len(out) != 4 or out[3] not in (1, 2):
        raise ModelError(f"{where}: output {list(out)} is not a 1- or 2-channel per-pixel map")
    return int(shape[1]), int(shape[2]), int(shape[3])


def _per_channel(norm: Any, channels: int) -> dict[str, list[float]] | None:
    if norm is None:
        return None
    mean, std = norm.per_channel(channels)
    return {"mean": mean, "std": std}


def _sha256(source: Path) -> str:
    h = hashlib.sha256()
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(source) if source.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def import_keras(
    source: Path,
    out: Path,
    io: IoOptions | None = None,
    name: str | None = None,
    data: str | None = None,
) -> ImportResult:
    """Write ``out/model.keras`` (2-channel logits) and ``out/train.json`` from ``source``."""
    from harness import tfcompat
    from harness.train.model_folder import save_model, write_json

    source, out = Path(source), Path(out)
    io = io or IoOptions()
    if io.output is not None or io.activation is not None:
        raise UsageError("import takes the model's single output: no --output/--activation")
    if (out / "model.keras").exists():
        raise UsageError(f"{out} already has a model.keras: choose another --out")
    if data is not None and data != "synthetic" and not Path(data).is_dir():
        raise UsageError(f"--data {data}: not a folder with images/ and masks/ (or 'synthetic')")
    model = _load(source)
    height, width, channels = _check_shapes(model, str(source))
    logits, stripped = _logits(model)
    keras = tfcompat.keras()
    out_channels = int(logits.shape[-1])
    if stripped == "sigmoid" and out_channels == 2:
        raise ModelError(f"{source}: a 2-channel sigmoid output is not a 2-class segmentation")
    if stripped == "softmax" and out_channels == 1:
        raise ModelError(f"{source}: a softmax over 1 channel is constant")
    fg = 1 if io.fg_channel is None else io.fg_channel
    if out_channels == 1:
        if fg != 1:
            raise UsageError("--fg-channel: a 1-channel output is the foreground")
        zero = keras.layers.Subtract(name="harness_zero")([logits, logits])
        logits = keras.layers.Concatenate(axis=-1, name="harness_logit_pair")([zero, logits])
    elif fg not in (0, 1):
        raise UsageError(f"--fg-channel {fg}: the output has 2 channels")
    imported = keras.Model(model.inputs, logits, name=f"{model.name}_logits")
    norm = io.normalization()
    warnings = () if norm is not None else (UNKNOWN_WARNING,)
    train_json = {
        "name": name or out.name,
        "arch": "imported",
        "input": {
            "height": height,
            "width": width,
            "channels": channels,
            "layout": "NHWC",
            "dtype": "float32",
            "color": "RGB",
            "normalization": _per_channel(norm, channels),
        },
        "output": {"kind": "logits", "channels": 2, "foreground_channel": fg},
        "data": {
            "source": data or "synthetic",
            "seed": 0,
            "val_ratio": 0.1,
            "n_train": 128,
            "n_val": 16,
        },
        "imported": {
            "source": str(source),
            "sha256": _sha256(source),
            "stripped_activation": stripped,
            "output_channels": out_channels,
        },
        "warnings": list(warnings),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_model(imported, out / "model.keras")
    write_json(out / "train.json", train_json)
    return ImportResult(out, train_json, warnings)
