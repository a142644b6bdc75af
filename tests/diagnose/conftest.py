"""Tiny models for the diagnose tests, built once per session.

* ``hot``/``calm``: one trained fixture net (64x64) whose last conv ("logits") is rescaled so the
  largest logit on the diagnose eval set is exactly 16 (past ln(65504) ~ 11.09 on its confident
  pixels) or 6 (below it everywhere); converted to softmax, sigmoid and logits heads.
* ``mid_softmax``: a lone .tflite with a SOFTMAX in the middle (conv -> softmax -> conv ->
  sigmoid), its softmax inputs past the FP16 exp range.
* ``reduction``: a lone .tflite with a MEAN over 64x64 large activations (sum past 65504).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.bench.plan import EVAL_SEED
from harness.convert import testing
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.variants import Head, Precision
from harness.diagnose import DiagnoseOptions

SIZE = 64
IMAGES = 2


def _eval_images(n: int = IMAGES) -> np.ndarray:
    from harness.train.data import synthetic_portraits

    images, _ = synthetic_portraits(n, SIZE, EVAL_SEED, channels=3)
    return images


def _rescale_logits(folder: Path, largest: float) -> None:
    from harness import tfcompat

    keras = tfcompat.keras()
    model = keras.models.load_model(folder / "model.keras", compile=False)
    x = testing.normalize(_eval_images(), testing.NORMALIZATION)
    current = float(np.max(model.predict(x, verbose=0)))
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    k = largest / current
    layer.set_weights([kernel * k, bias * k])
    model.save(folder / "model.keras")


@pytest.fixture(scope="session")
def diag_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("diagnose")
    trained = testing.make_model_folder(
        base / "trained", size=SIZE, n_train=96, n_val=8, epochs=3, seed=1
    )
    out = {}
    for name, largest in (("hot", 16.0), ("calm", 6.0)):
        folder = base / name
        shutil.copytree(trained, folder)
        _rescale_logits(folder, largest)
        convert_model(
            folder,
            ConvertOptions(
                heads=(Head.SOFTMAX, Head.SIGMOID, Head.LOGITS),
                precisions=(Precision.FP32,),
                accuracy=False,
            ),
        )
        out[name] = folder
    return out


def _convert(model) -> bytes:
    from harness import tfcompat

    return tfcompat.tf().lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="session")
def mid_softmax(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conv -> conv(2) -> SOFTMAX -> conv(1) -> LOGISTIC: the softmax is not the output."""
    from harness import tfcompat

    keras = tfcompat.keras()
    keras.utils.set_random_seed(3)
    layers = keras.layers
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)  # raw pixels: large values
    x = layers.Conv2D(2, 1, kernel_initializer=keras.initializers.RandomNormal(0, 0.3))(x)
    x = layers.Softmax(axis=-1)(x)
    x = layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant([[[[-4.0], [4.0]]]]))(x)
    out = layers.Activation("sigmoid")(x)
    path = tmp_path_factory.mktemp("mid") / "mid_softmax.tflite"
    path.write_bytes(_convert(keras.Model(inp, out)))
    return path


@pytest.fixture(scope="session")
def reduction(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conv(relu) -> MEAN over H, W (global context) -> ADD -> conv(1) -> LOGISTIC."""
    from harness import tfcompat

    keras = tfcompat.keras()
    keras.utils.set_random_seed(4)
    layers = keras.layers
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    f = layers.Conv2D(4, 1, activation="relu", kernel_initializer="ones")(inp)  # ~ 3 x pixel
    g = layers.GlobalAveragePooling2D(keepdims=True)(f)  # MEAN: sum of 4096 values ~ 4e5..3e6
    x = layers.Add()([f, g])
    weights = np.array([0.01, -0.01, 0.001, 0.0], np.float32).reshape(1, 1, 4, 1)
    x = layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(weights))(x)
    out = layers.Activation("sigmoid")(x)  # inf - inf = NaN once the MEAN is inf
    path = tmp_path_factory.mktemp("reduction") / "global_context.tflite"
    path.write_bytes(_convert(keras.Model(inp, out)))
    return path


def options(model: Path, phone, store: Path, **kw) -> DiagnoseOptions:
    """Small and fast: 2 images, 2 timed runs, 1 invocation, 1 probe image."""
    base = dict(
        model=str(model),
        devices=(phone.serial,),
        store=str(store),
        images=IMAGES,
        runs=2,
        warmup=1,
        repeats=1,
        probe_images=1,
        delegates="cpu,gpu,gpu-fp32",
    )
    base.update(kw)
    return DiagnoseOptions(**base)
