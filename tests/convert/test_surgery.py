"""Heads from any float .tflite: graph surgery checked on the desktop, quantized files refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import cli, tfcompat
from harness.convert.from_tflite import TOLERANCE, convert_tflite
from harness.convert.iospec import IoOptions
from harness.convert.reference import run_tflite
from harness.convert.specs import Semantics
from harness.convert.variants import Head, read_manifest
from harness.errors import ExitCode, ModelError, UsageError
from harness.tflite.model import read_tflite

SIZE = 32


def _keras_tflite(path: Path, channels: int, activation: str, scale: float = 4.0) -> Path:
    """conv -> conv(channels) with logits of magnitude ~``scale`` -> activation (non-square)."""
    keras = tfcompat.keras()
    keras.utils.set_random_seed(7)
    inp = keras.Input((SIZE, SIZE + 8, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    kernel = keras.initializers.RandomNormal(0.0, scale, seed=1)
    bias = keras.initializers.RandomNormal(0.0, scale, seed=2)
    x = keras.layers.Conv2D(channels, 1, kernel_initializer=kernel, bias_initializer=bias)(x)
    out = (
        keras.layers.Activation(activation)(x)
        if activation != "softmax"
        else (keras.layers.Softmax(axis=-1)(x))
    )
    path.write_bytes(
        tfcompat.tf().lite.TFLiteConverter.from_keras_model(keras.Model(inp, out)).convert()
    )
    return path


@pytest.fixture(scope="module")
def softmax_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _keras_tflite(tmp_path_factory.mktemp("sm") / "portrait_softmax.tflite", 2, "softmax")


def _inputs(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.uniform(-1, 1, (n, SIZE, SIZE + 8, 3)).astype(np.float32)


def test_softmax_file_gives_every_head(softmax_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "heads"
    manifest = convert_tflite(softmax_file, out_dir=folder, io=IoOptions(input_range="-1,1"))
    assert [r.id for r in manifest.variants] == [
        "softmax-fp32",
        "sigmoid-fp32",
        "logits-fp32",
        "argmax-fp32",
    ]
    assert manifest.source["cut"] == "SOFTMAX" and manifest.source["logits_channels"] == 2
    assert read_manifest(folder) == manifest
    x = _inputs()
    files = {r.variant.head: folder / r.file for r in manifest.variants}
    original = run_tflite(softmax_file, x)
    softmax = run_tflite(files[Head.SOFTMAX], x)
    sigmoid = run_tflite(files[Head.SIGMOID], x)
    logits = run_tflite(files[Head.LOGITS], x)
    mask = run_tflite(files[Head.ARGMAX], x)
    # precondition: confident logits, so the check is not trivially met by probabilities ~0.5
    assert np.abs(logits).max() > 5
    assert np.abs(softmax - original).max() < 1e-6  # the cut + re-append is the same softmax
    assert np.abs(sigmoid[..., 0] - softmax[..., 1]).max() <= TOLERANCE
    assert np.array_equal(mask, (logits[..., 1] > logits[..., 0]).astype(np.uint8))
    assert manifest.source["checks"]["sigmoid_vs_softmax_fg_max_abs"] <= TOLERANCE
    by_id = {r.id: r for r in manifest.variants}
    assert by_id["sigmoid-fp32"].output.semantics is Semantics.FOREGROUND_PROBABILITY
    assert by_id["logits-fp32"].output.semantics is Semantics.LOGITS
    assert by_id["argmax-fp32"].output.semantics is Semantics.MASK
    assert by_id["softmax-fp32"].input.normalization.mean == (127.5,)
    for record in manifest.variants:  # one output each, no SOFTMAX left in the sigmoid head
        assert len(read_tflite(folder / record.file).outputs) == 1
    assert "SOFTMAX" not in by_id["sigmoid-fp32"].ops and "LOGISTIC" in by_id["sigmoid-fp32"].ops


def test_background_first_channel_order(softmax_file: Path, tmp_path: Path) -> None:
    manifest = convert_tflite(
        softmax_file, out_dir=tmp_path / "h", io=IoOptions(input_range="-1,1", fg_channel=0)
    )
    files = {r.variant.head: tmp_path / "h" / r.file for r in manifest.variants}
    x = _inputs(2)
    softmax, sigmoid = run_tflite(files[Head.SOFTMAX], x), run_tflite(files[Head.SIGMOID], x)
    assert np.abs(sigmoid[..., 0] - softmax[..., 0]).max() <= TOLERANCE
    logits, mask = run_tflite(files[Head.LOGITS], x), run_tflite(files[Head.ARGMAX], x)
    assert np.array_equal(mask, (logits[..., 0] > logits[..., 1]).astype(np.uint8))


def test_one_channel_sigmoid_file(tmp_path: Path) -> None:
    path = _keras_tflite(tmp_path / "selfie.tflite", 1, "sigmoid")
    manifest = convert_tflite(path, io=IoOptions(input_range="0,1"))
    folder = tmp_path / "selfie"  # default: beside the file
    assert manifest.source["cut"] == "LOGISTIC" and manifest.source["logits_channels"] == 1
    files = {r.variant.head: folder / r.file for r in manifest.variants}
    x = _inputs()
    original = run_tflite(path, x)
    sigmoid = run_tflite(files[Head.SIGMOID], x)
    softmax = run_tflite(files[Head.SOFTMAX], x)
    logits = run_tflite(files[Head.LOGITS], x)
    assert np.abs(sigmoid - original).max() < 1e-6
    assert np.abs(softmax[..., 1] - original[..., 0]).max() <= TOLERANCE
    assert np.abs(softmax.sum(-1) - 1).max() < 1e-6
    assert np.array_equal(run_tflite(files[Head.ARGMAX], x), (logits[..., 0] > 0).astype(np.uint8))


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected")
def test_quantized_file_is_refused_in_one_line(tmp_path: Path) -> None:
    keras = tfcompat.keras()
    inp = keras.Input((8, 8, 3), batch_size=1)
    out = keras.layers.Softmax()(keras.layers.Conv2D(2, 1)(inp))
    conv = tfcompat.tf().lite.TFLiteConverter.from_keras_model(keras.Model(inp, out))
    conv.optimizations = [tfcompat.tf().lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [np.random.default_rng(i).uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)] for i in range(8)
    )
    conv.target_spec.supported_ops = [tfcompat.tf().lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tfcompat.tf().int8
    path = tmp_path / "q.tflite"
    path.write_bytes(conv.convert())
    with pytest.raises(ModelError) as err:
        convert_tflite(path, io=IoOptions(input_range="0,1"))
    assert "float .tflite" in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == ExitCode.MODEL
    assert not (tmp_path / "q").exists()


def test_cli_convert_tflite(softmax_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    cli.main(
        ["convert", str(softmax_file), "--heads", "softmax,sigmoid", "--out", str(out), "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    assert [v["id"] for v in data["variants"]] == ["softmax-fp32", "sigmoid-fp32"]
    assert data["source"]["warnings"]  # no metadata, no flag: the normalization is unknown
    for argv, text in (
        (["--heads", "sigsoftmax"], "not made from a .tflite"),
        (["--precisions", "int8"], "fp32 heads only"),
        (["--output", "3"], "--output 3"),
    ):
        with pytest.raises(SystemExit) as exc:
            cli.main(["convert", str(softmax_file), "--out", str(tmp_path / "x"), *argv])
        assert exc.value.code == ExitCode.USAGE
        err = capsys.readouterr().err.strip()
        assert text in err and len(err.splitlines()) == 1
    with pytest.raises(UsageError):
        convert_tflite(softmax_file, (Head.SIGSOFTMAX,), tmp_path / "y")
