"""Bad input: one-line harness errors, and nothing half-written in variants/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import cli
from harness.convert import pipeline, testing
from harness.convert.inspection import inspect_tflite
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.variants import (
    Head,
    Precision,
    atomic_write_bytes,
    parse_heads,
    parse_precisions,
)
from harness.errors import ConversionFailed, ExitCode, ModelError, UsageError

FP32_SIGMOID = ConvertOptions(heads=(Head.SIGMOID,), precisions=(Precision.FP32,), accuracy=False)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def _leftovers(folder: Path) -> list[str]:
    variants = folder / "variants"
    return sorted(p.name for p in variants.iterdir()) if variants.exists() else []


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as exc:
        convert_model(tmp_path / "missing", FP32_SIGMOID)
    assert "not a model folder" in _one_line(exc)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError) as exc:
        convert_model(tmp_path / "empty", FP32_SIGMOID)
    assert "missing model.keras, train.json" in _one_line(exc)
    assert _leftovers(tmp_path / "empty") == []


def test_corrupt_model_keras_and_train_json(model_copy: Path) -> None:
    (model_copy / "train.json").write_text("{not json")
    with pytest.raises(ModelError) as exc:
        convert_model(model_copy, FP32_SIGMOID)
    _one_line(exc)
    meta = {"arch": "x", "input": {}, "output": {"kind": "logits", "channels": 2}}
    (model_copy / "train.json").write_text(json.dumps(meta))
    (model_copy / "model.keras").write_bytes(b"garbage")
    with pytest.raises(ModelError) as exc:
        convert_model(model_copy, FP32_SIGMOID)
    assert "model.keras" in _one_line(exc)
    assert _leftovers(model_copy) == []


def test_model_without_two_channel_logits(tmp_path: Path) -> None:
    folder = testing.make_model_folder(
        tmp_path / "three", size=16, n_train=8, n_val=2, epochs=1, out_channels=3
    )
    with pytest.raises(ModelError) as exc:
        convert_model(folder, FP32_SIGMOID)
    assert "expected 2-channel logits" in _one_line(exc)
    assert _leftovers(folder) == []
    assert not (folder / "variants.json").exists()


def test_train_json_disagreeing_with_model(model_copy: Path) -> None:
    meta = json.loads((model_copy / "train.json").read_text())
    meta["input"]["height"] = 128
    (model_copy / "train.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError) as exc:
        convert_model(model_copy, FP32_SIGMOID)
    assert "does not match" in _one_line(exc)


@pytest.mark.parametrize("cut", [0, 7, 100, -64])
def test_truncated_tflite(converted, tmp_path: Path, cut: int) -> None:
    folder, manifest = converted
    data = (folder / manifest.get("softmax-fp32").file).read_bytes()
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(ModelError) as exc:
        inspect_tflite(bad)
    _one_line(exc)


def test_corrupt_tflite(converted, tmp_path: Path) -> None:
    folder, manifest = converted
    data = bytearray((folder / manifest.get("softmax-fp32").file).read_bytes())
    for i in range(8, 200):
        data[i] ^= 0xA5
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError) as exc:
        inspect_tflite(bad)
    assert "corrupt or truncated" in _one_line(exc)
    with pytest.raises(ModelError):
        inspect_tflite(tmp_path / "nope.tflite")


def test_unknown_head_or_precision() -> None:
    with pytest.raises(UsageError) as exc:
        parse_heads("softmax,tanh")
    assert "unknown head 'tanh'" in _one_line(exc)
    with pytest.raises(UsageError) as exc:
        parse_precisions("fp32,int4")
    assert "unknown precision 'int4'" in _one_line(exc)
    assert parse_heads("all") == tuple(Head)
    assert parse_precisions(" FP16 , int8-dynamic,fp16") == (Precision.FP16, Precision.INT8_DYNAMIC)


def test_cli_bad_inputs_exit_with_one_line(model_copy: Path, tmp_path: Path, capsys) -> None:
    cases = [
        (["convert", str(model_copy), "--heads", "tanh"], ExitCode.USAGE, "unknown head"),
        (["convert", str(model_copy), "--precisions", "int4"], ExitCode.USAGE, "unknown precision"),
        (["convert", str(tmp_path / "nope")], ExitCode.MODEL, "not a model folder"),
        (["inspect", str(model_copy / "train.json")], ExitCode.MODEL, "not a TFLite model"),
    ]
    for argv, code, text in cases:
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == int(code), argv
        err = capsys.readouterr().err.strip()
        assert text in err and len(err.splitlines()) == 1, err
    assert _leftovers(model_copy) == []


def test_failure_midway_leaves_only_complete_files(model_copy: Path, provider, monkeypatch) -> None:
    from harness.convert import quantize

    real = quantize.convert_variant
    calls = []

    def flaky(model, head, precision, **kw):
        calls.append(head)
        if len(calls) == 2:
            raise ConversionFailed(f"conversion of {head}-{precision} failed: boom")
        return real(model, head, precision, **kw)

    monkeypatch.setattr(quantize, "convert_variant", flaky)
    opts = ConvertOptions(
        heads=(Head.SOFTMAX, Head.SIGMOID), precisions=(Precision.FP32,), accuracy=False
    )
    with pytest.raises(ConversionFailed):
        convert_model(model_copy, opts, data=provider)
    assert _leftovers(model_copy) == ["softmax-fp32.tflite"]
    manifest = json.loads((model_copy / "variants.json").read_text())
    assert [v["id"] for v in manifest["variants"]] == ["softmax-fp32"]


def test_atomic_write_cleans_up_on_failure(tmp_path: Path, monkeypatch) -> None:
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "variants" / "x.tflite", b"123")
    assert list((tmp_path / "variants").iterdir()) == []


def test_missing_training_data_is_a_model_error(model_copy: Path) -> None:
    opts = ConvertOptions(heads=(Head.SOFTMAX,), precisions=(Precision.INT8,), accuracy=False)
    with pytest.raises(ModelError) as exc:  # fixture train.json names a source no one provides
        convert_model(model_copy, opts)
    _one_line(exc)
    assert _leftovers(model_copy) == []


_ = pipeline
