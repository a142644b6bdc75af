"""Every fp32 head is an exact re-expression of the Keras model's logits.

The expected values are written out here with plain numpy, independently of
harness.convert.heads: changing a head's definition makes these tests fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import tfcompat
from harness.convert.folder import load_model_folder
from harness.convert.quantize import convert_variant
from harness.convert.reference import EvalSet, normalize, reference_outputs, run_tflite
from harness.convert.variants import Head, Manifest, Precision

TOL = 1e-5


def _softmax_fg(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * (z[..., 1] - z[..., 0])))


def _sigsoftmax_naive(z: np.ndarray) -> np.ndarray:
    """Kanai et al.: exp(z_i) sigmoid(z_i) / sum_j exp(z_j) sigmoid(z_j) (fine for |z| < 80)."""
    z = z.astype(np.float64)
    e = np.exp(z) / (1.0 + np.exp(-z))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def keras_logits(converted: tuple[Path, Manifest], provider) -> tuple[EvalSet, np.ndarray]:
    folder, manifest = converted
    mf = load_model_folder(folder)
    images, masks = provider("val")
    eval_set = EvalSet("val", images, masks)
    logits = mf.model.predict(normalize(images, mf.normalization), verbose=0)
    assert logits.shape == (len(images), 64, 64, 2)
    return eval_set, logits


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "sigsoftmax", "logits", "argmax"])
def test_fp32_head_matches_keras(converted, keras_logits, head: str) -> None:
    folder, manifest = converted
    eval_set, z = keras_logits
    record = manifest.get(f"{head}-fp32")
    ref = reference_outputs(
        folder / record.file, eval_set, record.input, record.output, cache_dir=folder / "reference"
    )
    raw = ref.raw.astype(np.float64)
    keras_fg = _softmax_fg(z)
    keras_mask = (z[..., 1] > z[..., 0]).astype(np.uint8)
    # the manifest's mask agreement with the float model is perfect for every fp32 head
    assert record.accuracy["vs_float"]["mask_iou"] == 1.0
    if head == "softmax":
        assert raw.shape == z.shape
        assert np.abs(raw[..., 1] - keras_fg).max() < TOL
        assert np.abs(raw[..., 0] - (1.0 - keras_fg)).max() < TOL
    elif head == "sigmoid":
        assert raw.shape == (*z.shape[:3], 1)
        assert np.abs(raw[..., 0] - keras_fg).max() < TOL
    elif head == "sigsoftmax":
        assert raw.shape == z.shape
        assert np.abs(raw - _sigsoftmax_naive(z)).max() < TOL
        assert np.array_equal(ref.mask, keras_mask)
    elif head == "logits":
        assert np.abs(raw - z).max() < 1e-4 * max(1.0, float(np.abs(z).max()))
        assert np.abs(ref.fg_prob - keras_fg).max() < TOL
    elif head == "argmax":
        assert ref.raw.dtype == np.uint8 and ref.raw.shape == z.shape[:3]
        assert np.array_equal(ref.raw, keras_mask)
    if head != "sigsoftmax" and head != "argmax":
        assert np.abs(ref.fg_prob - keras_fg).max() < TOL
        assert record.accuracy["vs_float"]["fg_prob_max_abs_error"] < TOL
    assert np.array_equal(ref.mask, keras_mask)


def test_sigsoftmax_is_stable_for_huge_logits() -> None:
    """The naive form overflows past |z| ~ 88; the head must stay finite and exact."""
    keras = tfcompat.keras()
    inp = keras.Input((4, 4, 2))
    out = keras.layers.Conv2D(2, 1, use_bias=False, name="scale")(inp)
    model = keras.Model(inp, out)
    model.get_layer("scale").set_weights([np.array([[[[500.0, 0.0], [0.0, 500.0]]]], np.float32)])
    x = np.random.default_rng(0).uniform(-1, 1, (3, 4, 4, 2)).astype(np.float32)
    z = model.predict(x, verbose=0).astype(np.float64)
    assert np.abs(z).max() > 200
    blob = convert_variant(model, Head.SIGSOFTMAX, Precision.FP32)
    out = run_tflite(blob, x)
    assert np.isfinite(out).all()
    log_sig = np.minimum(z, 0) - np.log1p(np.exp(-np.abs(z)))
    w = z + log_sig
    expected = np.exp(w - w.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    assert np.abs(out - expected).max() < TOL
    sig = run_tflite(convert_variant(model, Head.SIGMOID, Precision.FP32), x)
    assert np.abs(sig[..., 0] - _softmax_fg(z)).max() < TOL


def test_foreground_channel_zero_is_respected() -> None:
    keras = tfcompat.keras()
    inp = keras.Input((4, 4, 2))
    model = keras.Model(inp, keras.layers.Conv2D(2, 1)(inp))
    x = np.random.default_rng(1).normal(0, 2, (2, 4, 4, 2)).astype(np.float32)
    z = model.predict(x, verbose=0).astype(np.float64)
    sig = run_tflite(convert_variant(model, Head.SIGMOID, Precision.FP32, foreground_channel=0), x)
    assert np.abs(sig[..., 0] - 1.0 / (1.0 + np.exp(z[..., 1] - z[..., 0]))).max() < TOL
    mask = run_tflite(convert_variant(model, Head.ARGMAX, Precision.FP32, foreground_channel=0), x)
    assert np.array_equal(mask, (z[..., 0] > z[..., 1]).astype(np.uint8))
