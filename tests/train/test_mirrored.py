"""MirroredStrategy over two logical CPUs: train, resume, convert and bench like one device.

TensorFlow's logical device configuration can be set only once per process, before its
runtime starts, so the mirrored run happens in a subprocess; the one-device run it is compared
with happens in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.bench.run import BenchOptions, run_bench
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.variants import Head, Precision, read_manifest
from harness.train import model_folder, trainer
from harness.train.config import TrainConfig

pytestmark = pytest.mark.slow

# 16 synthetic portraits, 4 held out: 12 training images = batches of 8 and 4 (split 4 + 4
# and 2 + 2 over two replicas), so 2 optimizer steps an epoch.
TINY = dict(samples=16, batch_size=8, val_ratio=0.25, checkpoint_every=1, seed=1)
STEPS_PER_EPOCH = 2

MIRRORED_RUN = """
import json, sys
from harness import cli, tfcompat
tf = tfcompat.tf()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
out, tiny = sys.argv[1], json.loads(sys.argv[2])
args = [f"--{k.replace('_', '-')}={v}" for k, v in tiny.items()]
for argv in (
    ["train", "--strategy", "mirrored", "--epochs", "1", "--out", out, *args],
    ["train", "--resume", "--strategy", "mirrored", "--epochs", "2", "--out", out],
):
    try:
        cli.main(argv)
    except SystemExit as exc:
        if exc.code:
            raise
print(json.dumps([d.name for d in tf.config.list_logical_devices("CPU")]))
"""


def _shape(value):
    """The structure of a train.json value: dict keys and value types, not the values (a
    list by its first item: the device list is as long as the strategy has replicas)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__ if value is not None else None


def _files(root: Path) -> set[str]:
    # Event files are named by host, time and pid; their folder is what the format fixes.
    return {
        str(p.relative_to(root)) if p.parent.name != "logs" else "logs/EVENTS"
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    base = tmp_path_factory.mktemp("strategies")
    mirrored = base / "mirrored"
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_RUN, str(mirrored), json.dumps(TINY)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cpus = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.stdout.count("training on 2 replica(s) (mirrored: ") == 2  # run and resume
    one = base / "one-device"  # the reference folder: the same run, not interrupted
    trainer.run(TrainConfig(**TINY, epochs=2, strategy="one-device", out=str(one)))
    return mirrored, one, cpus


def test_mirrored_run_trains_on_two_replicas_and_resumes(runs) -> None:
    mirrored, _, cpus = runs
    assert len(cpus) == 2  # the precondition: two logical CPUs in the subprocess
    info = json.loads((mirrored / "train.json").read_text())
    assert info["training"]["devices"] == {
        "strategy": "mirrored",
        "replicas": 2,
        "devices": cpus,
        "precision": "float32",
    }
    assert info["status"] == "complete" and [e["epoch"] for e in info["epochs"]] == [1, 2]
    state = json.loads((mirrored / "checkpoints" / "state.json").read_text())
    # Resumed from the stored optimizer step: two epochs of 3 global batches each.
    assert state["next_epoch"] == 3 and state["optimizer_step"] == 2 * STEPS_PER_EPOCH
    for record in info["epochs"]:
        assert 0 <= record["val_iou"] <= 1 and record["loss"] > 0


def test_model_folder_is_the_same_format_as_one_device(runs) -> None:
    mirrored, one, _ = runs
    assert _files(mirrored) == _files(one)
    info_m = json.loads((mirrored / "train.json").read_text())
    info_o = json.loads((one / "train.json").read_text())
    assert _shape(info_m) == _shape(info_o)
    assert info_o["training"]["devices"]["replicas"] == 1
    assert info_m["data"]["fingerprint"] == info_o["data"]["fingerprint"]
    model_m, _ = model_folder.load(mirrored)
    model_o, _ = model_folder.load(one)
    assert model_m.input_shape == model_o.input_shape == (1, 128, 128, 3)
    assert model_m.output_shape == model_o.output_shape == (1, 128, 128, 2)
    assert [w.name for w in model_m.weights] == [w.name for w in model_o.weights]
    assert {w.dtype.name for w in model_m.weights} == {"float32"}


def test_mirrored_model_converts_and_benches_like_one_device(runs, start_phone, tmp_path) -> None:
    phone = start_phone("SM-G973F")
    options = ConvertOptions(heads=(Head.SOFTMAX,), precisions=(Precision.FP32,), accuracy=False)
    specs = []
    for folder in runs[:2]:
        convert_model(folder, options)
        record = read_manifest(folder).get("softmax-fp32")
        specs.append((record.input, record.output))
        out = run_bench(
            BenchOptions(
                model=str(folder),
                devices=(phone.serial,),
                store=str(tmp_path / "results.db"),
                variants="softmax-fp32",
                delegates="cpu",
                runs=2,
                warmup=1,
                repeats=1,
                images=2,
            )
        )
        assert out.status == "complete" and len(out.cells) == 1
        cell = out.cells[0]
        assert cell.measured and cell.latency.avg_ms > 0
        assert cell.accuracy.signature == "ok"
    assert specs[0] == specs[1]
