"""Tiny .tflite models (built once per session) and a virtual-phone root for benchmark_model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEADS = ("softmax", "sigmoid", "argmax")


def _build(head: str):
    from harness import tfcompat

    tf, keras = tfcompat.tf(), tfcompat.keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    # Large weights push logits well past the FP16 rounding step, so FP16 visibly differs.
    x = keras.layers.Conv2D(2, 1, kernel_initializer=keras.initializers.RandomNormal(0, 3.0))(x)
    if head == "softmax":
        x = keras.layers.Softmax(axis=-1)(x)
    elif head == "sigmoid":
        x = keras.layers.Activation("sigmoid")(x)
    else:
        x = keras.layers.Lambda(lambda t: tf.argmax(t, axis=-1))(x)
    model = keras.Model(inp, x)
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bm-models")
    paths = {}
    for head in HEADS:
        path = folder / f"tiny_{head}.tflite"
        path.write_bytes(_build(head))
        paths[head] = path
    return paths


@pytest.fixture
def phone(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """Factory: a sandbox root with .harness/virtual.json; returns the environment to run in."""

    def make(gpu_backends=("cl", "gl"), **extra) -> dict[str, str]:
        root = tmp_path / "root"
        (root / ".harness").mkdir(parents=True, exist_ok=True)
        config = {
            "profile": "test",
            "gpu_backends": list(gpu_backends),
            "faults": [],
            "model": "SM-G973F",
            **extra,
        }
        (root / ".harness" / "virtual.json").write_text(json.dumps(config))
        env = dict(os.environ)
        env.update(
            HARNESS_VIRTUAL_ROOT=str(root),
            HARNESS_VIRTUAL_PYTHON=sys.executable,
            PYTHONPATH=str(REPO),
            PYTHONDONTWRITEBYTECODE="1",
        )
        return env

    return make


def run_benchmark(flags: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.virtual.benchmark_model", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
