"""Desktop reference outputs: caching, preprocessing and decoding (also of raw device bytes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.convert.reference import (
    EvalSet,
    decode_output,
    decode_outputs,
    preprocess,
    reference_outputs,
)
from harness.convert.specs import (
    Activation,
    InputSpec,
    Normalization,
    OutputSpec,
    Quantization,
    Semantics,
)
from harness.errors import ModelError, UsageError


def test_cache_hit_on_second_call(converted, provider, tmp_path: Path) -> None:
    folder, manifest = converted
    record = manifest.get("sigmoid-fp16")
    images, masks = provider("val")
    eval_set = EvalSet("val8", images[:8], masks[:8])
    first = reference_outputs(
        folder / record.file, eval_set, record.input, record.output, cache_dir=tmp_path
    )
    second = reference_outputs(
        folder / record.file, eval_set, record.input, record.output, cache_dir=tmp_path
    )
    assert not first.cached and second.cached
    assert np.array_equal(first.raw, second.raw) and np.array_equal(first.mask, second.mask)
    entry = tmp_path / f"{record.sha256[:16]}-{eval_set.fingerprint[:16]}.npz"
    assert entry.is_file() and [p.name for p in tmp_path.iterdir()] == [entry.name]
    other = EvalSet("val4", images[:4], masks[:4])
    assert not reference_outputs(
        folder / record.file, other, record.input, record.output, cache_dir=tmp_path
    ).cached
    entry.write_bytes(b"corrupt")  # a broken cache entry is recomputed, not trusted
    again = reference_outputs(
        folder / record.file, eval_set, record.input, record.output, cache_dir=tmp_path
    )
    assert not again.cached and np.array_equal(again.raw, first.raw)


def test_default_cache_dir_is_harness_home(converted, provider, harness_home: Path) -> None:
    folder, manifest = converted
    record = manifest.get("logits-fp32")
    images, _ = provider("val")
    eval_set = EvalSet("two", images[:2])
    reference_outputs(folder / record.file, eval_set, record.input, record.output)
    assert reference_outputs(folder / record.file, eval_set, record.input, record.output).cached
    assert any((harness_home / "reference").iterdir())


def test_eval_set_fingerprint() -> None:
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert EvalSet("x", a).fingerprint == EvalSet("y", a.copy()).fingerprint
    b = a.copy()
    b[0, 0, 0, 0] = 1
    assert EvalSet("x", a).fingerprint != EvalSet("x", b).fingerprint
    m = np.zeros((2, 4, 4), np.uint8)
    assert EvalSet("x", a, m).fingerprint != EvalSet("x", a).fingerprint
    with pytest.raises(UsageError):
        EvalSet("bad", a.astype(np.float32))
    with pytest.raises(UsageError):
        EvalSet("bad", a, m[:1])


def test_preprocess_normalizes_and_quantizes() -> None:
    images = np.array([[[[0, 127, 255]]]], np.uint8)
    norm = Normalization((127.5,) * 3, (127.5,) * 3)
    f = preprocess(images, InputSpec("in", 0, (1, 1, 1, 3), "float32", norm))
    assert np.allclose(f, [[[[-1.0, -0.00392157, 1.0]]]], atol=1e-6)
    q = preprocess(images, InputSpec("in", 0, (1, 1, 1, 3), "int8", norm, Quantization(1 / 64, 0)))
    assert q.dtype == np.int8 and q.tolist() == [[[[-64, 0, 64]]]]
    raw = preprocess(images, InputSpec("in", 0, (1, 1, 1, 3), "uint8"))
    assert raw.dtype == np.uint8 and raw.tolist() == images.tolist()
    with pytest.raises(UsageError):
        preprocess(np.zeros((1, 2, 2, 3), np.uint8), InputSpec("in", 0, (1, 1, 1, 3), "float32"))
    four = preprocess(
        np.full((1, 1, 1, 4), 255, np.uint8), InputSpec("in", 0, (1, 1, 1, 4), "float32", norm)
    )
    assert np.allclose(four, 1.0)  # an RGB normalization extends to the prior channel


def _spec(
    shape,
    dtype="float32",
    semantics=Semantics.CLASS_PROBABILITIES,
    activation=Activation.SOFTMAX,
    channels=2,
    fg=1,
    q=None,
) -> OutputSpec:
    return OutputSpec("out", 0, shape, dtype, semantics, activation, channels, fg, q)


def test_decode_every_semantics() -> None:
    z = np.array([[[[0.0, 2.0], [3.0, -1.0]]]], np.float32)  # [1, 1, 2, 2]
    p_fg = 1 / (1 + np.exp(-(z[..., 1] - z[..., 0])))
    logits = _spec((1, 1, 2, 2), semantics=Semantics.LOGITS, activation=Activation.NONE)
    prob, mask = decode_output(z, logits)
    assert prob.shape == (1, 2) and np.allclose(prob, p_fg[0]) and mask.tolist() == [[1, 0]]
    probs = np.stack([1 - p_fg, p_fg], axis=-1).astype(np.float32)
    prob2, mask2 = decode_output(probs, _spec((1, 1, 2, 2)))
    assert np.allclose(prob2, p_fg[0]) and mask2.tolist() == [[1, 0]]
    swapped = _spec((1, 1, 2, 2), fg=0)
    assert decode_output(probs, swapped)[1].tolist() == [[0, 1]]
    one = _spec(
        (1, 1, 2, 1),
        semantics=Semantics.FOREGROUND_PROBABILITY,
        activation=Activation.SIGMOID,
        channels=1,
        fg=None,
    )
    prob1, mask1 = decode_output(p_fg[..., None].astype(np.float32), one)
    assert np.allclose(prob1, p_fg[0]) and mask1.tolist() == [[1, 0]]
    mask_spec = _spec((1, 1, 2), "uint8", Semantics.MASK, Activation.ARGMAX, 1, None)
    prob_m, mask_m = decode_output(np.array([[[1, 0]]], np.uint8), mask_spec)
    assert mask_m.tolist() == [[1, 0]] and prob_m.tolist() == [[1.0, 0.0]]


def test_decode_quantized_and_raw_bytes() -> None:
    q = Quantization(1 / 256, -128)
    spec = _spec((1, 1, 2, 2), "int8", q=q)
    raw = np.array([[[[-128, 127], [64, -65]]]], np.int8)
    prob, mask = decode_output(raw, spec)
    assert np.allclose(prob, [[255 / 256, (-65 + 128) / 256]]) and mask.tolist() == [[1, 0]]
    # bytes pulled from a phone: decode straight from the buffer
    fspec = _spec((1, 1, 2, 2))
    values = np.array([[[[0.2, 0.8], [0.9, 0.1]]]], np.float32)
    p_bytes, m_bytes = decode_output(np.frombuffer(values.tobytes(), np.uint8), fspec)
    assert np.allclose(p_bytes, [[0.8, 0.1]]) and m_bytes.tolist() == [[1, 0]]
    batch = np.concatenate([values, values[..., ::-1]])
    probs, masks = decode_outputs(batch, fspec)
    assert probs.shape == (2, 1, 2) and masks.tolist() == [[[1, 0]], [[0, 1]]]
    with pytest.raises(ModelError):
        decode_output(np.zeros(7, np.uint8), fspec)  # wrong byte count
