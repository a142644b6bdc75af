"""A tiny, self-made model folder for tests and the conversion benchmark.

Images are flat-coloured disks and ellipses on noisy backgrounds; the net is a small U-shaped
tf_keras conv net with built-in layers only and 2-channel logits, trained for a few seconds.
It follows docs/model-folder.md, so the converter cannot tell it from a real trained model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness import tfcompat

__all__ = ["blob_images", "build_net", "make_model_folder"]

NORMALIZATION = {"mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}


def blob_images(n: int, size: int, seed: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [n, size, size, channels], masks uint8 [n, size, size])``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, size, size, channels), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    skin = np.array([205.0, 135.0, 95.0])
    for i in range(n):
        bg = rng.uniform(0, 255, 3)
        while np.abs(bg - skin).max() < 90:  # keep the background away from the "skin" colour
            bg = rng.uniform(0, 255, 3)
        img = np.clip(bg + rng.normal(0, 15, (size, size, 3)), 0, 255)
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        ry, rx = rng.uniform(0.15, 0.35, 2) * size
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        fg = skin + rng.uniform(-25, 25, 3)
        img[mask] = np.clip(fg + rng.normal(0, 10, (int(mask.sum()), 3)), 0, 255)
        images[i, ..., :3] = img.astype(np.uint8)
        if channels == 4:  # prior mask: the true mask shifted by a few pixels
            prior = np.roll(mask, rng.integers(-3, 4, 2), axis=(0, 1))
            images[i, ..., 3] = prior.astype(np.uint8) * 255
        masks[i] = mask
    return images, masks


def normalize(images: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    channels = images.shape[-1]
    mean = np.resize(np.asarray(normalization["mean"], np.float32), channels)
    std = np.resize(np.asarray(normalization["std"], np.float32), channels)
    return ((images.astype(np.float32) - mean) / std).astype(np.float32)


def build_net(size: int, channels: int = 3, width: int = 8, out_channels: int = 2) -> Any:
    keras = tfcompat.keras()
    layers = keras.layers
    inp = keras.Input((size, size, channels), name="image")
    c1 = layers.Conv2D(width, 3, padding="same", activation="relu")(inp)
    d1 = layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu")(c1)
    d1 = layers.DepthwiseConv2D(3, padding="same")(d1)
    d1 = layers.BatchNormalization()(d1)
    d1 = layers.ReLU()(d1)
    u1 = layers.UpSampling2D(2, interpolation="bilinear")(d1)
    m = layers.Concatenate()([u1, c1])
    m = layers.Conv2D(width, 3, padding="same", activation="relu")(m)
    out = layers.Conv2D(out_channels, 1, name="logits")(m)
    return keras.Model(inp, out, name="fixture")


def make_model_folder(
    folder: Path,
    *,
    size: int = 64,
    channels: int = 3,
    n_train: int = 256,
    n_val: int = 32,
    epochs: int = 10,
    width: int = 8,
    seed: int = 0,
    out_channels: int = 2,
) -> Path:
    """Train the fixture net briefly and write ``model.keras`` + ``train.json`` to ``folder``."""
    keras = tfcompat.keras()
    keras.utils.set_random_seed(seed)
    images, masks = blob_images(n_train + n_val, size, seed, channels)
    norm = {"mean": [127.5] * channels, "std": [127.5] * channels}
    x = normalize(images[:n_train], norm)
    y = masks[:n_train]
    model = build_net(size, channels, width, out_channels)
    model.compile(
        optimizer=keras.optimizers.Adam(5e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y[..., None], batch_size=16, epochs=epochs, verbose=0)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    train_json = {
        "name": folder.name,
        "arch": "fixture-unet",
        "arch_params": {"width": width},
        "input": {
            "height": size,
            "width": size,
            "channels": channels,
            "layout": "NHWC",
            "dtype": "float32",
            "color": "RGB",
            "normalization": norm,
        },
        "output": {"kind": "logits", "channels": out_channels, "foreground_channel": 1},
        "data": {
            "source": "fixture-blobs",
            "seed": seed,
            "val_ratio": n_val / (n_train + n_val),
            "n_train": n_train,
            "n_val": n_val,
        },
        "epochs": [],
    }
    (folder / "train.json").write_text(json.dumps(train_json, indent=2) + "\n")
    return folder
