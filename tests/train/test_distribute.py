"""Strategies and precision: resolving devices (pure), refusals, and mixed precision on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import cli, tfcompat
from harness.errors import UsageError
from harness.train import model_folder, trainer
from harness.train.config import TrainConfig, merge_for_resume
from harness.train.distribute import Devices, Strategy, resolve

CPU = ["/device:CPU:0"]
GPUS = ["/device:GPU:0", "/device:GPU:1"]


@pytest.mark.parametrize(
    ("strategy", "gpus", "cpus", "expected", "devices"),
    [
        ("auto", [], CPU, Strategy.ONE_DEVICE, CPU),
        ("auto", GPUS[:1], CPU, Strategy.ONE_DEVICE, GPUS[:1]),
        ("auto", GPUS, CPU, Strategy.MIRRORED, GPUS),
        ("mirrored", GPUS, CPU, Strategy.MIRRORED, GPUS),
        ("mirrored", [], ["/device:CPU:0", "/device:CPU:1"], Strategy.MIRRORED, None),
        ("one-device", GPUS, CPU, Strategy.ONE_DEVICE, GPUS[:1]),
        ("cpu", GPUS, CPU, Strategy.CPU, CPU),
    ],
)
def test_resolve_picks_the_devices(strategy, gpus, cpus, expected, devices) -> None:
    got = resolve(strategy, False, gpus, cpus)
    assert got.strategy is expected
    assert list(got.devices) == (devices or cpus)
    assert got.describe()["replicas"] == len(got.devices)
    assert got.describe()["precision"] == "float32"


def test_mixed_precision_is_for_gpus_only() -> None:
    assert resolve("auto", True, GPUS, CPU).describe()["precision"] == "mixed_float16"
    for strategy, gpus in (("auto", []), ("cpu", GPUS), ("mirrored", [])):
        with pytest.raises(UsageError, match="--mixed-precision needs a GPU") as info:
            resolve(strategy, True, gpus, CPU)
        assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_unknown_strategy_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown --strategy 'warp'; choose one of: auto"):
        Strategy.parse("warp")


def _fails(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(["train", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


def test_cli_refuses_mixed_precision_on_cpu(tmp_path: Path, capsys) -> None:
    # --strategy cpu makes the precondition (no GPU in the run) true on any machine.
    out = tmp_path / "m"
    err = _fails(["--mixed-precision", "--strategy", "cpu", "--out", str(out)], capsys)
    assert "--mixed-precision needs a GPU" in err
    assert not out.exists()  # refused before anything is written


@pytest.mark.slow
def test_mixed_precision_run_saves_a_float32_model(tmp_path: Path) -> None:
    """The mixed_float16 path, forced onto the CPU (the CLI refuses that; ``devices=`` does
    not): losses are finite float32 values, and the saved model is float32 throughout."""
    keras = tfcompat.keras()
    cpu = tfcompat.tf().config.list_logical_devices("CPU")[0].name
    # float16 convolutions are slow on a CPU: a narrow net, one batch, no band target.
    config = TrainConfig(
        samples=8,
        batch_size=6,
        val_ratio=0.25,
        epochs=1,
        width=0.5,
        boundary_weight=0.0,
        seed=3,
        out=str(tmp_path / "mp"),
    )
    result = trainer.run(config, devices=Devices(Strategy.ONE_DEVICE, (cpu,), True))
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    record = result.epochs[0]
    assert all(np.isfinite(record[k]) for k in ("loss", "seg_loss", "val_loss"))
    model, info = model_folder.load(result.folder)
    assert info["training"]["devices"]["precision"] == "mixed_float16"
    assert model.input.dtype == "float32" and model.output.dtype == "float32"
    assert {w.dtype.name for w in model.weights} == {"float32"}
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    x = np.zeros((1, 128, 128, 3), np.float32)
    assert model(x).dtype == "float32"


def test_resume_may_change_the_strategy_but_not_the_precision() -> None:
    stored = TrainConfig(strategy="mirrored", out="models/x")
    assert merge_for_resume(stored, {"strategy": "one-device"}).strategy == "one-device"
    assert merge_for_resume(stored, {"cache": "/tmp/c"}).cache == "/tmp/c"
    with pytest.raises(UsageError, match="cannot change --mixed-precision when resuming"):
        merge_for_resume(stored, {"mixed_precision": True})
    with pytest.raises(UsageError, match="cannot change --layout when resuming"):
        merge_for_resume(stored, {"layout": "eg1800"})
