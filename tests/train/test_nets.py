"""Architectures: registry, sizes, outputs, built-in layers only, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import tfcompat
from harness.errors import UsageError
from harness.train import nets

# Layers the TFLite GPU delegate runs and tf_keras loads without custom_objects.
ALLOWED = {
    "InputLayer",
    "Conv2D",
    "DepthwiseConv2D",
    "BatchNormalization",
    "ReLU",
    "Add",
    "Concatenate",
    "UpSampling2D",
    "AveragePooling2D",
}


@pytest.fixture(scope="module")
def portrait() -> nets.Nets:
    """One PortraitNet build shared by the tests below (it has ~300 layers: slow to build)."""
    return nets.build("portraitnet", 64, 3)


def _built(name: str, channels: int, portrait: nets.Nets) -> nets.Nets:
    if name == "portraitnet" and channels == 3:
        return portrait
    return nets.build(name, 64, channels)


def test_registry_has_both_archs() -> None:
    assert set(nets.ARCHS) >= {"sinet-lite", "portraitnet"}
    assert nets.ARCHS["portraitnet"].boundary_head
    assert not nets.ARCHS["sinet-lite"].boundary_head
    with pytest.raises(UsageError, match="unknown arch 'unet'; choose one of"):
        nets.get_arch("unet")


@pytest.mark.parametrize(
    ("name", "channels"), [("sinet-lite", 3), ("sinet-lite", 4), ("portraitnet", 3)]
)
def test_nets_emit_two_channel_logits_from_builtin_layers(
    name: str, channels: int, portrait: nets.Nets
) -> None:
    built = _built(name, channels, portrait)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, channels)).astype(np.float32)
    logits = built.inference(x, training=False).numpy()
    assert logits.shape == (2, 64, 64, 2) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    kinds = {type(layer).__name__ for layer in built.training.layers}
    assert kinds <= ALLOWED, kinds - ALLOWED
    for layer in built.training.layers:
        if type(layer).__name__ == "UpSampling2D":
            assert layer.interpolation == "bilinear"
    outputs = built.training(x, training=False)
    if built.arch.boundary_head:
        assert [tuple(o.shape) for o in outputs] == [(2, 64, 64, 2), (2, 64, 64, 1)]
        assert len(built.inference.outputs) == 1  # the boundary head is training-only
    else:
        assert len(built.training.outputs) == 1


def test_param_budgets(portrait: nets.Nets) -> None:
    light = nets.count_params(nets.build("sinet-lite", 128).inference)
    assert light < 200_000
    assert nets.count_params(nets.build("sinet-lite", 128, width=0.5).inference) < light
    assert nets.count_params(nets.build("sinet-lite", 128, channels=4).inference) > light
    # PortraitNet: 2.1 M (parameters do not depend on the input size).
    assert 1_500_000 < nets.count_params(portrait.inference) < 2_500_000


def test_layer_names_are_deterministic() -> None:
    first = [layer.name for layer in nets.build("sinet-lite", 64).training.layers]
    second = [layer.name for layer in nets.build("sinet-lite", 64).training.layers]
    assert first == second


def test_fixed_batch_export_round_trips_without_custom_objects(
    tmp_path: Path, portrait: nets.Nets
) -> None:
    keras = tfcompat.keras()
    built = portrait
    export = nets.fixed_batch(built.inference)
    assert export.input_shape == (1, 64, 64, 3) and export.output_shape == (1, 64, 64, 2)
    path = tmp_path / "model.keras"
    export.save(str(path))
    loaded = keras.models.load_model(str(path), compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in export.layers]
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), built.inference(x).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("size", "channels", "width", "message"),
    [
        (96, 3, 1.0, "between 128 and 512"),
        (544, 3, 1.0, "between 128 and 512"),
        (130, 3, 1.0, "not a multiple of 32.*try 128 or 160"),
        (128, 2, 1.0, "--channels must be 3"),
        (128, 3, 0.0, "--width must be"),
    ],
)
def test_check_input(size: int, channels: int, width: float, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        nets.check_input(nets.get_arch("sinet-lite"), size, channels, width)


@pytest.mark.parametrize("name", ["sinet-lite", "portraitnet"])
def test_logit_scale_multiplies_the_exported_logits(name: str, portrait: nets.Nets) -> None:
    """--logit-scale: the exported net's logits x K exactly (masks unchanged), training net not."""
    built = _built(name, 3, portrait)
    export = nets.fixed_batch(built.inference)
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype(np.float32)
    before = export(x, training=False).numpy()
    nets.scale_logits(export, 3.0)
    after = export(x, training=False).numpy()
    assert np.abs(before).max() > 1e-3  # the check below could fail
    np.testing.assert_allclose(after, 3.0 * before, rtol=1e-5, atol=1e-6)
    assert (after.argmax(-1) == before.argmax(-1)).all()
    np.testing.assert_array_equal(built.inference(x, training=False).numpy(), before)
