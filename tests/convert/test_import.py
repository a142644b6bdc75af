"""``harness import``: a foreign tf_keras .h5 (4-channel input, softmax last) becomes a model
folder; every fp32 head converted from it agrees with the original network within 1e-5."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import cli, tfcompat
from harness.convert.folder import load_model_folder
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.reference import run_tflite
from harness.convert.variants import Head, Precision
from harness.errors import ExitCode

pytestmark = pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")

SIZE = 24
TOL = 1e-5


def _foreign(path: Path, fused: bool, channels_out: int = 2, activation: str = "softmax") -> Path:
    """Plain tf_keras, as another team's script would write it: RGB + prior mask input."""
    keras = tfcompat.keras()
    keras.utils.set_random_seed(5)
    inp = keras.Input((SIZE, SIZE, 4), name="rgb_prior")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    kernel = keras.initializers.RandomNormal(0.0, 1.5, seed=3)
    if fused:
        out = keras.layers.Conv2D(
            channels_out, 1, activation=activation, kernel_initializer=kernel, name="head"
        )(x)
    else:
        x = keras.layers.Conv2D(channels_out, 1, kernel_initializer=kernel, name="head")(x)
        out = (
            keras.layers.Softmax(name="probs")(x)
            if activation == "softmax"
            else keras.layers.Activation(activation, name="probs")(x)
        )
    model = keras.Model(inp, out)
    model.save(str(path))  # .h5: the legacy HDF5 format
    return path


def _inputs(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(9)
    return rng.uniform(-1, 1, (n, SIZE, SIZE, 4)).astype(np.float32)


@pytest.mark.parametrize("fused", [False, True], ids=["softmax-layer", "fused-softmax"])
def test_h5_imports_and_every_head_matches_the_original(tmp_path: Path, fused: bool) -> None:
    h5 = _foreign(tmp_path / "team_256_4channels.h5", fused)
    folder = tmp_path / "models" / "team"
    cli.main(["import", str(h5), "--out", str(folder), "--input-range", "-1,1", "--json"])
    mf = load_model_folder(folder)  # meets the model-folder contract
    assert mf.input_shape == (SIZE, SIZE, 4) and mf.normalization.mean == (127.5,) * 4
    assert mf.train_json["imported"]["stripped_activation"] == "softmax"
    heads = tuple(Head)
    manifest = convert_model(
        folder, ConvertOptions(heads=heads, precisions=(Precision.FP32,), accuracy=False)
    )
    original = tfcompat.keras().models.load_model(str(h5), compile=False)
    x = _inputs()
    probs = original.predict(x, verbose=0)  # [N, H, W, 2] softmax
    assert np.abs(probs[..., 1] - 0.5).max() > 0.4  # precondition: confident pixels exist
    mask = (probs[..., 1] > probs[..., 0]).astype(np.uint8)
    out = {r.variant.head: run_tflite(folder / r.file, x) for r in manifest.variants}
    assert np.abs(out[Head.SOFTMAX] - probs).max() <= TOL
    assert np.abs(out[Head.SIGMOID][..., 0] - probs[..., 1]).max() <= TOL
    z = out[Head.LOGITS].astype(np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    assert np.abs(e / e.sum(-1, keepdims=True) - probs).max() <= TOL
    sig = out[Head.SIGSOFTMAX]  # its own probabilities; the same mask
    assert np.array_equal((sig[..., 1] > sig[..., 0]).astype(np.uint8), mask)
    assert np.array_equal(out[Head.ARGMAX], mask)


def test_one_channel_sigmoid_becomes_a_logit_pair(tmp_path: Path) -> None:
    h5 = _foreign(tmp_path / "selfie.h5", fused=True, channels_out=1, activation="sigmoid")
    folder = tmp_path / "selfie"
    cli.main(["import", str(h5), "--out", str(folder), "--mean", "0", "--std", "255"])
    manifest = convert_model(
        folder,
        ConvertOptions(
            heads=(Head.SIGMOID, Head.SOFTMAX), precisions=(Precision.FP32,), accuracy=False
        ),
    )
    original = tfcompat.keras().models.load_model(str(h5), compile=False)
    x = _inputs()
    p = original.predict(x, verbose=0)[..., 0]
    by_head = {r.variant.head: run_tflite(folder / r.file, x) for r in manifest.variants}
    assert np.abs(by_head[Head.SIGMOID][..., 0] - p).max() <= TOL
    assert np.abs(by_head[Head.SOFTMAX][..., 1] - p).max() <= TOL


def test_import_errors_are_one_line(tmp_path: Path, capsys) -> None:
    h5 = _foreign(tmp_path / "m.h5", fused=False)
    (tmp_path / "junk.h5").write_bytes(b"not a model")
    cases = [
        ([str(tmp_path / "missing.h5")], ExitCode.USAGE, "no such model"),
        ([str(tmp_path / "junk.h5")], ExitCode.MODEL, "cannot be loaded"),
        ([str(h5), "--input-range", "0,3"], ExitCode.USAGE, "--input-range"),
    ]
    for argv, code, text in cases:
        with pytest.raises(SystemExit) as exc:
            cli.main(["import", *argv, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert exc.value.code == code and text in err and len(err.splitlines()) == 1
    cli.main(["import", str(h5), "--out", str(tmp_path / "ok"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["input"]["normalization"] is None and data["warnings"]  # unknown: warned
    with pytest.raises(SystemExit) as exc:
        cli.main(["import", str(h5), "--out", str(tmp_path / "ok")])
    assert exc.value.code == ExitCode.USAGE  # never overwrites a model folder
