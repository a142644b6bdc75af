"""Per-layer quantization error, suggested float layers and selective int8 (issue 19)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness import tfcompat
from harness.convert.explain import MIN_GAIN, LayerError, suggest_float_layers
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.variants import Head, Precision, parse_precisions
from harness.errors import UsageError
from tests.convert.conftest import SIZE, Provider


def _layer(name: str, alone: float | None, down: tuple[str, ...], with_down: float | None):
    return LayerError(name, "CONV_2D", 0.1, 2.0, 0.5, 0.0, alone, down, with_down)


def test_suggestion_is_the_cheapest_option_near_the_best() -> None:
    measured = [
        _layer("a", 0.90, ("x", "y", "z", "w"), 0.975),  # best, but 5 layers
        _layer("b", 0.90, ("x", "y"), 0.974),  # within 0.002 of the best with 3
        _layer("c", 0.95, (), None),
    ]
    names, iou = suggest_float_layers(measured, base_iou=0.90)
    assert names == ("b", "x", "y") and iou == 0.974
    # nothing gains MIN_GAIN: no suggestion
    flat = [_layer("a", 0.90 + MIN_GAIN / 2, ("x",), 0.90)]
    assert suggest_float_layers(flat, base_iou=0.90) == ((), None)


def test_selective_precision_is_not_a_default() -> None:
    assert Precision.INT8_SELECTIVE not in parse_precisions("all")
    assert parse_precisions("int8-selective") == (Precision.INT8_SELECTIVE,)


def test_flags_that_need_the_accuracy_pass(model_copy) -> None:
    with pytest.raises(UsageError, match="accuracy pass"):
        convert_model(
            model_copy,
            ConvertOptions(accuracy=False, explain_quantization=True, heads=(Head.SOFTMAX,)),
        )
    with pytest.raises(UsageError, match="--float-layers"):
        convert_model(model_copy, ConvertOptions(precisions=(Precision.INT8_SELECTIVE,)))
    assert not (model_copy / "variants").exists()  # nothing written before the checks


def _positive_logits_folder(folder: Path) -> tuple[Path, Provider]:
    """A fixed-weight 1x1 conv whose two logits are both positive (``z_bg = 2 r + 3``,
    ``z_fg = 2 r + 3 + g``, r, g the normalized red and green in [-1, 1]): the mask is
    ``g > 0``. Nothing is trained, so the int8 behaviour does not depend on luck."""
    keras = tfcompat.keras()
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    conv = keras.layers.Conv2D(2, 1, name="logits")
    model = keras.Model(inp, conv(inp))
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, :] = 2.0
    kernel[0, 0, 1, 1] = 1.0
    conv.set_weights([kernel, np.array([3.0, 3.0], np.float32)])
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    norm = {"mean": [127.5] * 3, "std": [127.5] * 3}
    train_json = {
        "name": folder.name,
        "arch": "fixed-conv",
        "input": {
            "height": SIZE,
            "width": SIZE,
            "channels": 3,
            "layout": "NHWC",
            "dtype": "float32",
            "color": "RGB",
            "normalization": norm,
        },
        "output": {"kind": "logits", "channels": 2, "foreground_channel": 1},
        "data": {"source": "test", "seed": 0},
    }
    (folder / "train.json").write_text(json.dumps(train_json))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, SIZE, SIZE, 3), dtype=np.uint8)
    fg = rng.random((48, SIZE, SIZE)) < 0.5
    # green far from the boundary: |z_fg - z_bg| >= 0.5, no near-ties for int8 to flip
    images[..., 1] = np.where(fg, rng.integers(192, 256, fg.shape), rng.integers(0, 64, fg.shape))
    masks = fg.astype(np.uint8)

    def provider(split: str) -> tuple[np.ndarray, np.ndarray]:
        return (images[:32], masks[:32]) if split == "train" else (images[32:], masks[32:])

    return folder, provider


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    folder, provider = _positive_logits_folder(tmp_path_factory.mktemp("explained") / "fixed")
    options = ConvertOptions(
        heads=(Head.SOFTMAX, Head.SIGSOFTMAX),
        precisions=(Precision.INT8,),
        explain_quantization=True,
        float_layers=("auto",),
    )
    return folder, convert_model(folder, options, data=provider)


def test_int8_records_carry_a_ranked_per_layer_report(explained) -> None:
    _, manifest = explained
    for head in ("softmax", "sigsoftmax"):
        q = manifest.get(f"{head}-int8").quantization
        assert q is not None and q["variant"] == f"{head}-int8"
        layers = q["layers"]
        assert len(layers) >= 2 and all(la["op"] and la["name"] for la in layers)
        measured = [la for la in layers if la["iou_if_float"] is not None]
        assert measured, "the worst layers are measured in float"
        effects = [max(la["iou_if_float"], la["iou_if_float_downstream"] or 0) for la in measured]
        assert effects == sorted(effects, reverse=True)  # ranked by effect
        assert all(math.isfinite(la["rmse_over_scale"]) for la in measured)


def test_sigsoftmax_int8_selective_recovers_the_softmax_int8_iou(explained) -> None:
    folder, manifest = explained
    softmax = manifest.get("softmax-int8").accuracy["vs_float"]["mask_iou"]
    sig = manifest.get("sigsoftmax-int8")
    q = sig.quantization
    # precondition: full int8 sigsoftmax loses accuracy against the int8 softmax head (its
    # MINIMUM shares one scale with the logits, clipping the positive ones)
    assert q["iou_vs_float"] < softmax - 0.005
    assert q["suggested_float_layers"], q["notes"]
    selective = manifest.get("sigsoftmax-int8-selective")
    assert selective.converter["float_layers"] == q["suggested_float_layers"]
    assert selective.converter["float_layers_source"] == "auto"
    assert (folder / selective.file).is_file()
    iou = selective.accuracy["vs_float"]["mask_iou"]
    assert iou >= softmax - 0.005
    assert iou == pytest.approx(q["suggested_iou_vs_float"], abs=0.002)
    assert selective.size == q["suggested_size"]  # the size cost the report states
    assert selective.gpu.delegation in ("full", "partial", "none")


def test_unknown_float_layer_is_a_usage_error(model_copy, provider) -> None:
    options = ConvertOptions(
        heads=(Head.SOFTMAX,), precisions=(Precision.INT8,), float_layers=("no/such/layer",)
    )
    with pytest.raises(UsageError, match="no/such/layer"):
        convert_model(model_copy, options, data=provider)
    assert (model_copy / "variants" / "softmax-int8.tflite").is_file()  # kept what it built


def test_inspect_shows_the_report_of_an_int8_variant(explained) -> None:
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.convert.inspection import inspect_tflite

    folder, manifest = explained
    path = folder / "variants" / "sigsoftmax-int8.tflite"
    result = inspect_tflite(path)
    assert result.quantization == manifest.get("sigsoftmax-int8").quantization
    assert (
        inspect_tflite(folder / "variants" / "sigsoftmax-int8-selective.tflite").quantization
        is None
    )
    out = CliRunner().invoke(app, ["inspect", str(path)])
    assert out.exit_code == 0, out.output
    assert "per-layer int8 error" in out.output and "suggested --float-layers" in out.output
    as_json = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert json.loads(as_json.output)["quantization"]["variant"] == "sigsoftmax-int8"
