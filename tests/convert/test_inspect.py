"""`harness inspect` on third-party-style models, and the GPU verdict on crafted graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import cli, tfcompat
from harness.convert.gpu import OpStatus, gpu_verdict
from harness.convert.inspection import inspect_tflite
from harness.convert.iospec import IoOptions
from harness.convert.reference import EvalSet, reference_outputs
from harness.convert.specs import Semantics
from harness.convert.tflite_model import read_tflite


def _convert(fn, shape, path: Path) -> Path:
    tf = tfcompat.tf()
    cf = tf.function(fn, autograph=False).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([cf]).convert())
    return path


@pytest.fixture(scope="module")
def sigmoid_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third-party-style selfie model: one sigmoid channel, no manifest anywhere."""
    keras = tfcompat.keras()
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    out = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    model = keras.Model(inp, out)
    path = tmp_path_factory.mktemp("third_party") / "selfie.tflite"
    path.write_bytes(tfcompat.tf().lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_inspect_infers_one_channel_foreground_probability(sigmoid_model: Path) -> None:
    r = inspect_tflite(sigmoid_model)
    assert r.source == "inferred" and r.variant_id is None
    assert r.output.semantics is Semantics.FOREGROUND_PROBABILITY
    assert r.output.channels == 1 and r.output.foreground_channel is None
    assert r.input.shape == (1, 32, 32, 3) and r.input.normalization is None
    assert r.gpu.delegation == "full"
    assert r.model.op_counts()["CONV_2D"] == 2
    overridden = inspect_tflite(sigmoid_model, IoOptions(activation="none", mean="0", std="255"))
    assert overridden.output.semantics is Semantics.LOGITS
    assert overridden.normalization_source == "flag"
    # the inferred specs drive a reference run like a manifest would
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    ref = reference_outputs(
        sigmoid_model,
        EvalSet("rand", images),
        overridden.input,
        r.output,
        cache_dir=sigmoid_model.parent / "ref",
    )
    assert ref.fg_prob.shape == (2, 32, 32) and 0 <= ref.fg_prob.min() <= ref.fg_prob.max() <= 1


def test_inspect_two_channels_and_foreground_override(tmp_path: Path) -> None:
    tf = tfcompat.tf()
    path = _convert(
        lambda x: tf.nn.softmax(x * 2.0 + 1.0, axis=-1), [1, 8, 8, 2], tmp_path / "two.tflite"
    )
    r = inspect_tflite(path)
    assert r.output.semantics is Semantics.CLASS_PROBABILITIES and r.output.foreground_channel == 1
    assert "[bg, fg]" in r.output.describe()
    r0 = inspect_tflite(path, IoOptions(fg_channel=0))
    assert r0.output.foreground_channel == 0 and "[fg, bg]" in r0.output.describe()


def test_inspect_uses_manifest_for_variants(converted) -> None:
    folder, manifest = converted
    record = manifest.get("sigmoid-int8")
    r = inspect_tflite(folder / record.file)
    assert r.source == "manifest" and r.variant_id == "sigmoid-int8"
    assert r.output == record.output and r.input == record.input


def test_cli_inspect_json_and_table(sigmoid_model: Path, converted, capsys) -> None:
    cli.main(["inspect", str(sigmoid_model), "--json", "--mean", "127.5", "--std", "127.5"])
    data = json.loads(capsys.readouterr().out)
    assert data["output"]["semantics"] == "foreground_probability"
    assert data["input"]["normalization"] == {"mean": [127.5], "std": [127.5]}
    assert data["gpu"]["delegation"] == "full" and data["size"] == sigmoid_model.stat().st_size
    folder, manifest = converted
    cli.main(["inspect", str(folder / manifest.get("argmax-fp32").file)])
    out = capsys.readouterr().out
    assert "ARG_MAX" in out and "partial" in out and "mask" in out


def test_gpu_verdict_flags_softmax_beta(tmp_path: Path) -> None:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    tf = tfcompat.tf()
    path = _convert(lambda x: tf.nn.softmax(x, axis=-1), [1, 8, 8, 2], tmp_path / "sm.tflite")
    assert gpu_verdict(read_tflite(path)).delegation == "full"
    model = flatbuffer_utils.read_model(str(path))
    for op in model.subgraphs[0].operators:
        if isinstance(op.builtinOptions, schema.SoftmaxOptionsT):
            op.builtinOptions.beta = 2.0
    beta2 = tmp_path / "beta2.tflite"
    beta2.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    tm = read_tflite(beta2)
    assert tm.ops[-1].options["beta"] == 2.0
    v = gpu_verdict(tm)
    assert v.delegation == "none"  # the only op is rejected
    assert [(i.op, i.status) for i in v.issues] == [("SOFTMAX", OpStatus.CPU)]
    assert "beta=2" in v.issues[0].reason


def test_gpu_verdict_flags_softmax_over_non_channel_axis(tmp_path: Path) -> None:
    tf = tfcompat.tf()
    path = _convert(lambda x: tf.nn.softmax(x, axis=1), [1, 8, 8, 2], tmp_path / "axis1.tflite")
    v = gpu_verdict(read_tflite(path))
    flagged = [i for i in v.issues if i.op == "SOFTMAX"]
    assert flagged and "non-channel axis" in flagged[0].reason


def test_gpu_verdict_unknown_op_runs_on_cpu(tmp_path: Path) -> None:
    tf = tfcompat.tf()
    path = _convert(lambda x: tf.math.round(x * 3.0), [1, 4, 4, 2], tmp_path / "odd.tflite")
    tm = read_tflite(path)
    v = gpu_verdict(tm)
    assert [i.op for i in v.cpu_ops] == ["ROUND"] and v.delegation == "partial"


def test_custom_op_resolved_by_xnnpack_loads_and_runs(tmp_path: Path) -> None:
    """MediaPipe-style ``Convolution2DTransposeBias``: only XNNPACK resolves it."""
    import struct

    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from harness.convert.reference import run_tflite

    keras = tfcompat.keras()
    inp = keras.Input((8, 8, 4), batch_size=1)
    out = keras.layers.Conv2DTranspose(
        2, 3, strides=2, padding="same", bias_initializer="random_normal"
    )(inp)
    builtin = tfcompat.tf().lite.TFLiteConverter.from_keras_model(keras.Model(inp, out)).convert()
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(builtin))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = "Convolution2DTransposeBias", 1
    model.operatorCodes.append(code)
    for op in model.subgraphs[0].operators:
        _shape, weights, x, bias = list(op.inputs)  # TRANSPOSE_CONV(output_shape, w, x, b)
        op.opcodeIndex = len(model.operatorCodes) - 1
        op.inputs = [x, weights, bias]
        op.builtinOptionsType, op.builtinOptions = 0, None
        op.customOptions = list(struct.pack("<iiii", 1, 2, 2, 0))  # SAME, stride 2x2, no act
    path = tmp_path / "custom.tflite"
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))

    r = inspect_tflite(path)
    assert [(op.name, op.custom) for op in r.model.ops] == [("Convolution2DTransposeBias", True)]
    assert r.gpu.delegation == "full"
    assert r.output.semantics is Semantics.CLASS_PROBABILITIES  # 2 channels, inferred
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype(np.float32)
    assert np.abs(run_tflite(path, x) - run_tflite(builtin, x)).max() < 1e-6
