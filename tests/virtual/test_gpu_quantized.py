"""The emulated GPU on fully quantized (int8 I/O) models: hooked ops work on real values.

A quantized tensor holds q with real = scale * (q - zero_point). The emulation must dequantize
a hooked op's inputs and requantize its output; otherwise a LOGISTIC/SOFTMAX output in [0, 1]
cast to int8 is all zeros (probability 0.5 everywhere after decoding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.virtual.conftest import run_benchmark


def _build_int8(head: str) -> bytes:
    from harness import tfcompat

    tf, keras = tfcompat.tf(), tfcompat.keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(2, 1, kernel_initializer=keras.initializers.RandomNormal(0, 1.0))(x)
    x = (
        keras.layers.Softmax(axis=-1)(x)
        if head == "softmax"
        else keras.layers.Activation("sigmoid")(x)
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, x))
    rng = np.random.default_rng(0)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)] for _ in range(32)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("int8")
    out = {}
    for head in ("sigmoid", "softmax"):
        out[head] = folder / f"{head}_int8.tflite"
        out[head].write_bytes(_build_int8(head))
    return out


@pytest.mark.parametrize("head", ["sigmoid", "softmax"])
def test_gpu_fp16_output_of_int8_model_stays_close_to_cpu(int8_models, phone, tmp_path, head):
    env = phone()
    value = tmp_path / "in.raw"
    value.write_bytes(np.random.default_rng(1).integers(-100, 100, 8 * 8 * 3, np.int8).tobytes())
    outs = {}
    for delegate in ("false", "true"):
        out = tmp_path / f"out-{delegate}.raw"
        run = run_benchmark(
            [
                f"--graph={int8_models[head]}",
                "--num_runs=1",
                "--warmup_runs=0",
                "--input_layer=image",
                "--input_layer_shape=1,8,8,3",
                f"--input_layer_value_files=image:{value}",
                f"--use_gpu={delegate}",
                f"--output_filepath={out}",
            ],
            env,
        )
        assert run.returncode == 0, run.stderr
        outs[delegate] = np.fromfile(out, np.int8).astype(int)
    cpu, gpu = outs["false"], outs["true"]
    assert np.abs(cpu).max() > 10  # a real output, not a degenerate model
    # float16 arithmetic moves a quantized probability by at most a step or two
    assert np.abs(cpu - gpu).max() <= 2, (cpu[:8], gpu[:8])
