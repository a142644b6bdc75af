"""The full precision matrix of the tiny model, converted once per session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.convert import testing
from harness.convert.pipeline import ConvertOptions, convert_model, plan_variants
from harness.convert.reference import EvalSet, reference_outputs
from harness.convert.tflite_model import read_tflite
from harness.convert.variants import Head, Precision, Variant, read_manifest

from .conftest import SEED, SIZE

EXPECTED_IDS = {f"{h}-{p}" for h in Head for p in ("fp32", "fp16", "int8-dynamic", "int8")} | {
    "softmax-qat"
}


def test_default_matrix_is_complete_and_consistent(converted) -> None:
    folder, manifest = converted
    assert {r.id for r in manifest.variants} == EXPECTED_IDS
    on_disk = read_manifest(folder)
    assert on_disk.to_dict() == json.loads(json.dumps(manifest.to_dict()))
    files = sorted(p.name for p in (folder / "variants").iterdir())
    assert files == sorted(f"{i}.tflite" for i in EXPECTED_IDS)  # no temp files left
    for r in manifest.variants:
        tm = read_tflite(folder / r.file)
        assert tm.sha256 == r.sha256 and tm.size == r.size
        assert r.ops == tm.op_names
        assert r.input.shape == (1, SIZE, SIZE, 3)
        assert r.input.normalization is not None and r.input.normalization.mean[0] == 127.5
        assert r.accuracy is not None and r.accuracy["eval_set"] == manifest.eval_set["fingerprint"]
        assert r.accuracy["vs_ground_truth"]["mask_iou"] > 0.85
    assert manifest.float_model["vs_ground_truth"]["mask_iou"] > 0.85


def test_io_types_per_precision(converted) -> None:
    _, manifest = converted
    for r in manifest.variants:
        integer = r.variant.precision in (Precision.INT8, Precision.QAT)
        assert r.input.dtype == ("int8" if integer else "float32")
        assert (r.input.quantization is not None) == integer
        if r.variant.head is Head.ARGMAX:
            assert r.output.dtype == "uint8" and r.output.shape == (1, SIZE, SIZE)
            assert r.output.quantization is None and r.output.semantics == "mask"
        else:
            assert r.output.dtype == ("int8" if integer else "float32")
            channels = 1 if r.variant.head is Head.SIGMOID else 2
            assert r.output.shape == (1, SIZE, SIZE, channels)
            assert r.output.foreground_channel == (1 if channels == 2 else None)


def test_heads_ops_and_gpu_verdicts(converted) -> None:
    folder, manifest = converted
    softmax = manifest.get("softmax-fp32")
    assert softmax.ops[-1] == "SOFTMAX" and softmax.gpu.delegation == "full"
    tm = read_tflite(folder / softmax.file)
    assert tm.ops[-1].options["beta"] == 1.0
    assert tm.tensor(tm.ops[-1].inputs[0]).shape[-1] == 2  # over the channel axis
    assert manifest.get("sigmoid-fp32").ops[-2:] == ("CONV_2D", "LOGISTIC")
    assert "EXP" in manifest.get("sigsoftmax-fp32").ops
    assert {i.op for i in manifest.get("sigsoftmax-fp32").gpu.warnings} == {"EXP", "LOG"}
    argmax = manifest.get("argmax-fp32")
    assert argmax.gpu.delegation == "partial"
    assert [i.op for i in argmax.gpu.cpu_ops] == ["ARG_MAX"]
    assert manifest.get("logits-fp32").gpu.delegation == "full"
    assert "DEQUANTIZE" in manifest.get("softmax-fp16").ops
    assert manifest.get("softmax-fp16").size < 0.8 * softmax.size
    assert manifest.get("softmax-int8").size < 0.7 * softmax.size


def test_quantized_variants_agree_with_float(converted) -> None:
    _, manifest = converted
    for r in manifest.variants:
        vf = r.accuracy["vs_float"]
        if r.variant.precision in (Precision.INT8, Precision.QAT):
            assert vf["mask_iou"] >= 0.97, (r.id, vf)
        if r.variant.precision is Precision.FP16:
            assert vf["mask_iou"] >= 0.995, (r.id, vf)
            if r.variant.head is not Head.ARGMAX:
                assert vf["fg_prob_max_abs_error"] < 5e-3, (r.id, vf)
    qat = manifest.get("softmax-qat")
    assert qat.converter["qat_epochs"] == 2 and qat.converter["io_dtype"] == "int8"


def test_int8_output_decodes_with_manifest_quantization(converted, provider) -> None:
    folder, manifest = converted
    images, masks = provider("val")
    eval_set = EvalSet("val", images[:4], masks[:4])
    fp32 = manifest.get("softmax-fp32")
    int8 = manifest.get("softmax-int8")
    a = reference_outputs(
        folder / fp32.file, eval_set, fp32.input, fp32.output, cache_dir=folder / "reference"
    )
    b = reference_outputs(
        folder / int8.file, eval_set, int8.input, int8.output, cache_dir=folder / "reference"
    )
    assert b.raw.dtype == np.int8
    assert int8.output.quantization.scale == 1 / 256 and int8.output.quantization.zero_point == -128
    assert np.abs(a.fg_prob - b.fg_prob).max() < 0.05


def test_plan_variants_qat_heads() -> None:
    opts = ConvertOptions(heads=(Head.SIGMOID,), precisions=(Precision.QAT,))
    assert plan_variants(opts) == [Variant(Head.SIGMOID, Precision.QAT)]
    opts = ConvertOptions(precisions=(Precision.FP32, Precision.QAT), qat_heads=None)
    assert len(plan_variants(opts)) == 10
    assert plan_variants(ConvertOptions())[-1] == Variant(Head.SOFTMAX, Precision.QAT)


def test_four_channel_model_converts(tmp_path: Path) -> None:
    folder = testing.make_model_folder(
        tmp_path / "four", size=32, channels=4, n_train=96, n_val=16, epochs=4, seed=SEED
    )
    images, masks = testing.blob_images(112, 32, SEED, channels=4)

    def provider(split: str):
        return (images[:96], masks[:96]) if split == "train" else (images[96:], masks[96:])

    opts = ConvertOptions(heads=(Head.SOFTMAX,), precisions=(Precision.FP32, Precision.INT8))
    manifest = convert_model(folder, opts, data=provider)
    assert [r.id for r in manifest.variants] == ["softmax-fp32", "softmax-int8"]
    for r in manifest.variants:
        assert r.input.shape == (1, 32, 32, 4)
        assert len(r.input.normalization.mean) == 4
    assert manifest.get("softmax-fp32").accuracy["vs_float"]["fg_prob_max_abs_error"] < 1e-5


def test_reconversion_merges_and_keeps_other_variants(model_copy: Path, provider) -> None:
    opts = ConvertOptions(heads=(Head.LOGITS,), precisions=(Precision.FP32,), accuracy=False)
    convert_model(model_copy, opts, data=provider)
    opts = ConvertOptions(heads=(Head.SIGMOID,), precisions=(Precision.FP32,), accuracy=False)
    manifest = convert_model(model_copy, opts, data=provider)
    assert [r.id for r in manifest.variants] == ["sigmoid-fp32", "logits-fp32"]
    assert manifest.get("logits-fp32").accuracy is None


def test_cli_convert_minimal(model_copy: Path, capsys) -> None:
    from harness import cli

    cli.main(
        [
            "convert",
            str(model_copy),
            "--heads",
            "sigmoid,argmax",
            "--precisions",
            "fp32",
            "--no-accuracy",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    data = json.loads(out[out.index("{") :])
    assert [v["id"] for v in data["variants"]] == ["sigmoid-fp32", "argmax-fp32"]
    assert data["variants"][0]["output"]["semantics"] == "foreground_probability"
    assert read_manifest(model_copy).get("argmax-fp32").output.semantics == "mask"
