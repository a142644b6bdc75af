"""End to end: a tiny run writes a model folder; resume and fine-tune continue it correctly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.errors import ModelError
from harness.train import model_folder, nets, trainer
from harness.train.config import TrainConfig

pytestmark = pytest.mark.slow  # trains real (tiny) models; still part of the default run

TINY = {"samples": 40, "batch_size": 8, "val_ratio": 0.2, "checkpoint_every": 1, "seed": 1}


def _config(out: Path, **overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "epochs": 2, "out": str(out), **overrides})


def _kernels(model) -> dict[str, np.ndarray]:
    return {w.name: w.numpy() for w in model.weights if "kernel" in w.name}


@pytest.fixture(scope="module")
def run_a(tmp_path_factory) -> Path:
    """2 epochs of sinet-lite on 40 synthetic portraits, uninterrupted."""
    out = tmp_path_factory.mktemp("runs") / "a"
    trainer.run(_config(out))
    return out


def test_model_folder_follows_the_contract(run_a: Path) -> None:
    model, info = model_folder.load(run_a)
    assert model.input_shape == (1, 128, 128, 3) and model.output_shape == (1, 128, 128, 2)
    assert info["name"] == "a" and info["arch"] == "sinet-lite"
    assert info["arch_params"] == {"width": 1.0}
    assert info["input"]["height"] == info["input"]["width"] == 128
    assert info["input"]["normalization"] == {"mean": [127.5] * 3, "std": [127.5] * 3}
    assert info["output"] == {"kind": "logits", "channels": 2, "foreground_channel": 1}
    assert info["data"]["source"] == "synthetic" and info["data"]["fingerprint"].startswith(
        "sha256:"
    )
    assert (info["data"]["n_train"], info["data"]["n_val"]) == (32, 8)
    assert [e["epoch"] for e in info["epochs"]] == [1, 2]
    for record in info["epochs"]:
        assert {"loss", "val_loss", "val_iou", "val_acc", "boundary_loss"} <= set(record)
        assert 0 <= record["val_iou"] <= 1
    best = max(info["epochs"], key=lambda e: e["val_iou"])
    assert info["best"] == {"epoch": best["epoch"], "val_iou": best["val_iou"]}
    assert info["status"] == "complete"
    checkpoints = run_a / "checkpoints"
    assert {p.name for p in checkpoints.glob("*.keras")} == {
        "epoch-001.keras",
        "epoch-002.keras",
        "best.keras",
    }
    state = json.loads((checkpoints / "state.json").read_text())
    assert state["next_epoch"] == 3 and state["optimizer_step"] == 2 * 4
    assert any(p.stat().st_size > 0 for p in (run_a / "logs").iterdir())
    # model.keras is the best checkpoint.
    best_model = model_folder.load_keras(checkpoints / "best.keras")
    x = np.random.default_rng(0).normal(size=(1, 128, 128, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x).numpy(), best_model(x).numpy())


def test_resume_continues_where_it_stopped(run_a: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "b"
    first = trainer.run(_config(out), stop_after=1)
    assert [e["epoch"] for e in first.epochs] == [1]
    stopped = json.loads((out / "train.json").read_text())
    assert stopped["status"] == "stopped"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--resume", "--out", str(out), "--arch", "portraitnet"])
    assert exit_info.value.code == 2
    assert "cannot change --arch when resuming" in capsys.readouterr().err

    cli.main(["train", "--resume", "--out", str(out)])
    resumed = json.loads((out / "train.json").read_text())
    uninterrupted = json.loads((run_a / "train.json").read_text())
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    assert resumed["status"] == "complete"
    assert json.loads((out / "checkpoints" / "state.json").read_text())["optimizer_step"] == 8
    # Same data order, weights and optimizer state (Adam moments, step for the schedule):
    # epoch 2 matches the uninterrupted run. (Restoring only the weights, with a fresh
    # optimizer, moves kernels by ~1e-2 here and changes the learning rate.)
    for key in ("loss", "val_loss", "val_iou", "lr"):
        assert resumed["epochs"][1][key] == pytest.approx(uninterrupted["epochs"][1][key], abs=1e-4)
    a = _kernels(model_folder.load_keras(run_a / "checkpoints" / "epoch-002.keras"))
    b = _kernels(model_folder.load_keras(out / "checkpoints" / "epoch-002.keras"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-5, err_msg=name)
    # Resuming a finished run is a no-op, not an error.
    capsys.readouterr()
    cli.main(["train", "--resume", "--out", str(out)])
    assert "already finished 2 epochs; nothing to do" in capsys.readouterr().out
    assert len(json.loads((out / "train.json").read_text())["epochs"]) == 2


def test_fine_tune_from_weights_on_a_folder_with_mattes(
    run_a: Path, folder: Path, tmp_path: Path
) -> None:
    import cv2

    (folder / "mattes").mkdir()
    for mask in (folder / "masks").iterdir():
        matte = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(
            str(folder / "mattes" / mask.name), cv2.GaussianBlur((matte > 0) * 255.0, (5, 5), 0)
        )
    out = tmp_path / "c"
    cli.main(
        [
            "train",
            "--data",
            str(folder),
            "--weights",
            str(run_a),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--lr",
            "1e-9",
            "--batch-size",
            "2",
            "--val-ratio",
            "0.34",
        ]
    )
    model, info = model_folder.load(out)
    assert info["data"]["n_train"] == 4 and info["data"]["mattes"] is True
    assert info["training"]["fine_tuned_from"] == str(run_a)
    assert info["training"]["matting_weight"] == 1.0  # on by default when mattes are given
    assert info["epochs"][0]["matting_loss"] > 0
    # With a vanishing learning rate the kernels are still the source's.
    source = _kernels(model_folder.load(run_a)[0])
    tuned = _kernels(model)
    fresh = _kernels(nets.build("sinet-lite", 128).inference)
    for name, value in source.items():
        np.testing.assert_allclose(tuned[name], value, atol=1e-6, err_msg=name)
    assert not np.allclose(fresh["stem_conv/kernel:0"], source["stem_conv/kernel:0"])


def test_weights_that_do_not_fit_are_model_errors(run_a: Path, tmp_path: Path) -> None:
    other = nets.build("portraitnet", 64)
    with pytest.raises(ModelError, match="is a sinet-lite model"):
        trainer.load_weights(other.inference, run_a, TrainConfig(arch="portraitnet").validated())
    four = nets.build("sinet-lite", 128, channels=4)
    with pytest.raises(ModelError, match="'stem_conv' has shape"):
        trainer.load_weights(
            four.inference, run_a / "model.keras", TrainConfig(channels=4).validated()
        )
    lone = tmp_path / "lone.keras"  # no train.json beside it: layer names decide
    lone.write_bytes((run_a / "model.keras").read_bytes())
    with pytest.raises(ModelError, match="layers differ"):
        trainer.load_weights(other.inference, lone, TrainConfig(arch="portraitnet").validated())


def test_portraitnet_trains_with_its_boundary_head(tmp_path: Path) -> None:
    out = tmp_path / "p"
    result = trainer.run(
        _config(
            out, arch="portraitnet", width=0.35, samples=12, epochs=1, batch_size=4, val_ratio=0.25
        )
    )
    record = result.epochs[0]
    assert record["boundary_loss"] > 0 and np.isfinite(record["loss"])
    model, info = model_folder.load(out)
    assert info["arch_params"] == {"width": 0.35}
    assert len(model.outputs) == 1 and model.output_shape == (1, 128, 128, 2)
    assert "boundary" not in {layer.name for layer in model.layers}
