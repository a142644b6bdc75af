"""Desktop reference outputs: every variant run with ai-edge-litert on this machine.

An *eval set* is a named batch of uint8 images (plus optional ground-truth masks) with a
fingerprint of its bytes. Reference outputs are cached by ``(variant sha256, eval-set
fingerprint)`` as ``<sha[:16]>-<fingerprint[:16]>.npz`` holding the raw output tensor, so the
bench and diagnose reuse them instead of re-running the interpreter.

Preprocessing follows the input spec (normalization, then int8/uint8 quantization); decoding
follows the output spec (dequantize, then foreground probability and mask). The decode
functions also serve the bench for raw on-device output bytes.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.convert.specs import InputSpec, Normalization, OutputSpec, Semantics
from harness.errors import ModelError, UsageError

__all__ = [
    "EvalSet",
    "ReferenceOutputs",
    "decode_output",
    "decode_outputs",
    "dequantize",
    "normalize",
    "preprocess",
    "reference_outputs",
    "run_tflite",
]


@dataclass(frozen=True, eq=False)
class EvalSet:
    """A named batch of uint8 images ``[N, H, W, C]`` and optional masks ``[N, H, W]``."""

    name: str
    images: np.ndarray
    masks: np.ndarray | None = None
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        images = np.ascontiguousarray(self.images)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise UsageError(f"eval set {self.name!r}: images must be uint8 [N, H, W, C]")
        masks = None if self.masks is None else np.ascontiguousarray(self.masks, np.uint8)
        if masks is not None and masks.shape != images.shape[:3]:
            raise UsageError(f"eval set {self.name!r}: masks {masks.shape} do not match images")
        h = hashlib.sha256()
        h.update(f"images{images.shape}".encode())
        h.update(images.tobytes())
        if masks is not None:
            h.update(f"masks{masks.shape}".encode())
            h.update(masks.tobytes())
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "fingerprint", h.hexdigest())

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def head(self, n: int | None) -> EvalSet:
        """The first ``n`` samples (a new set, with its own fingerprint)."""
        if n is None or n >= len(self):
            return self
        masks = None if self.masks is None else self.masks[:n]
        return EvalSet(f"{self.name}[:{n}]", self.images[:n], masks)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "n": len(self),
            "shape": list(self.images.shape[1:]),
            "has_masks": self.masks is not None,
        }


@dataclass(frozen=True, eq=False)
class ReferenceOutputs:
    raw: np.ndarray  # [N, *output_shape[1:]], the output tensor's dtype
    fg_prob: np.ndarray  # float32 [N, H, W]
    mask: np.ndarray  # uint8 [N, H, W], 1 = foreground
    sha256: str
    eval_fingerprint: str
    cached: bool


# --- preprocessing ---------------------------------------------------------------------------


def normalize(images: np.ndarray, normalization: Normalization | None) -> np.ndarray:
    """uint8 pixels -> float32 ``(pixel - mean) / std`` per channel (raw 0..255 if None)."""
    x = np.asarray(images, dtype=np.float32)
    if normalization is None:
        return x
    mean, std = normalization.per_channel(x.shape[-1])
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def preprocess(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 images ``[N, H, W, C]`` -> the model's input tensor values ``[N, H, W, C]``."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    expected = tuple(spec.shape[1:])
    if tuple(images.shape[1:]) != expected:
        raise UsageError(
            f"images are {list(images.shape[1:])} but the model input is {list(expected)}"
        )
    dtype = np.dtype(spec.dtype)
    if dtype.kind in "iu" and spec.quantization is None:
        if spec.normalization is not None:
            raise UsageError("an integer input without quantization takes raw pixels only")
        return images.astype(dtype)
    x = normalize(images, spec.normalization)
    if spec.quantization is None:
        return x.astype(dtype)
    q = spec.quantization
    info = np.iinfo(dtype)
    return np.clip(np.round(x / q.scale) + q.zero_point, info.min, info.max).astype(dtype)


# --- decoding --------------------------------------------------------------------------------


def dequantize(raw: np.ndarray, spec: OutputSpec) -> np.ndarray:
    """Output values as float32 (affine dequantization when the output is quantized)."""
    if spec.quantization is not None and np.asarray(raw).dtype.kind in "iu":
        q = spec.quantization
        return ((np.asarray(raw, np.float32) - q.zero_point) * q.scale).astype(np.float32)
    return np.asarray(raw, dtype=np.float32)


def _check_spec(spec: OutputSpec) -> np.dtype:
    """An output spec the decoder can follow (a hand-edited manifest may say anything)."""
    try:
        dtype = np.dtype(spec.dtype)
    except TypeError as exc:
        raise ModelError(f"output {spec.name!r}: unknown dtype {spec.dtype!r}") from exc
    shape = tuple(spec.shape)
    if len(shape) not in (3, 4) or any(int(d) < 1 for d in shape[1:]):
        raise ModelError(f"output {spec.name!r}: shape {list(shape)} is not a per-pixel map")
    per_pixel = int(shape[3]) if len(shape) == 4 else 1
    if spec.semantics is Semantics.MASK:
        if per_pixel != 1:
            raise ModelError(f"output {spec.name!r}: a mask has one value per pixel")
        return dtype
    if spec.channels < 1 or spec.channels != per_pixel:
        raise ModelError(
            f"output {spec.name!r}: {spec.channels} channels do not match shape {list(shape)}"
        )
    fg = spec.foreground_channel
    if spec.channels > 1 and fg is not None and not 0 <= fg < spec.channels:
        raise ModelError(
            f"output {spec.name!r}: foreground channel {fg} out of range for "
            f"{spec.channels} channels"
        )
    return dtype


def _as_batch(raw: np.ndarray, spec: OutputSpec, batched: bool) -> np.ndarray:
    raw = np.asarray(raw)
    dtype = _check_spec(spec)
    if raw.dtype != dtype and raw.dtype == np.uint8 and dtype.itemsize > 1:
        if raw.size % dtype.itemsize:
            raise ModelError(f"{raw.size} output bytes are not a whole number of {dtype} values")
        raw = np.ascontiguousarray(raw).reshape(-1).view(dtype)  # raw bytes from a device
    per_sample = tuple(spec.shape[1:])
    n_per = int(np.prod(per_sample))
    if n_per == 0 or raw.size % n_per or (not batched and raw.size != n_per):
        raise ModelError(
            f"output has {raw.size} values, expected {'N x ' if batched else ''}{n_per} "
            f"for shape {list(spec.shape)}"
        )
    return raw.reshape((-1, *per_sample))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def _decode(batch: np.ndarray, spec: OutputSpec) -> tuple[np.ndarray, np.ndarray]:
    n = batch.shape[0]
    if spec.semantics is Semantics.MASK:
        m = batch.reshape(n, *_hw(spec))
        mask = (m != 0).astype(np.uint8)
        return mask.astype(np.float32), mask
    values = dequantize(batch, spec)
    if spec.channels == 1:
        v = values.reshape(n, *_hw(spec))
        if spec.semantics is Semantics.LOGITS:
            return _sigmoid(v).astype(np.float32), (v > 0).astype(np.uint8)
        return v.astype(np.float32), (v > 0.5).astype(np.uint8)
    v = values.reshape(n, *_hw(spec), spec.channels)
    fg = spec.foreground_channel if spec.foreground_channel is not None else spec.channels - 1
    mask = (np.argmax(v, axis=-1) == fg).astype(np.uint8)
    if spec.semantics is Semantics.LOGITS:
        z = v.astype(np.float64)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        prob = e[..., fg] / e.sum(axis=-1)
        return prob.astype(np.float32), mask
    return v[..., fg].astype(np.float32), mask


def _hw(spec: OutputSpec) -> tuple[int, int]:
    if len(spec.shape) < 3:
        raise ModelError(f"output shape {list(spec.shape)} is not a per-pixel map")
    return int(spec.shape[1]), int(spec.shape[2])


def decode_output(raw: np.ndarray, output_spec: OutputSpec) -> tuple[np.ndarray, np.ndarray]:
    """One sample's raw output (tensor or its bytes) -> (fg_prob float32 [H, W], mask uint8).

    A mask output has no probability: its fg_prob is the mask as 0.0 / 1.0.
    """
    fg_prob, mask = _decode(_as_batch(raw, output_spec, batched=False), output_spec)
    return fg_prob[0], mask[0]


def decode_outputs(raw: np.ndarray, output_spec: OutputSpec) -> tuple[np.ndarray, np.ndarray]:
    """A batch of raw outputs ``[N, ...]`` -> (fg_prob float32 [N, H, W], mask uint8 [N, H, W])."""
    return _decode(_as_batch(raw, output_spec, batched=True), output_spec)


# --- running ---------------------------------------------------------------------------------


def run_tflite(
    model: Path | bytes,
    inputs: np.ndarray,
    *,
    input_index: int | None = None,
    output_index: int | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Invoke a .tflite once per sample of ``inputs`` ``[N, ...]``; returns ``[N, ...]``.

    Uses LiteRT's default op resolver with XNNPACK applied, so custom ops that XNNPACK
    resolves (e.g. ``Convolution2DTransposeBias``) run.
    """
    from ai_edge_litert.interpreter import Interpreter

    from harness.convert._native import native_output_silenced

    try:
        with native_output_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
            if isinstance(model, bytes | bytearray):
                interp = Interpreter(model_content=bytes(model), num_threads=num_threads)
            else:
                interp = Interpreter(model_path=str(model), num_threads=num_threads)
            interp.allocate_tensors()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"LiteRT cannot load {_name(model)}: {first}") from exc
    in_details = interp.get_input_details()
    if len(in_details) != 1 and input_index is None:
        raise UsageError(f"{_name(model)} has {len(in_details)} inputs; one is supported")
    in_idx = in_details[0]["index"] if input_index is None else input_index
    out_idx = interp.get_output_details()[0]["index"] if output_index is None else output_index
    outs = []
    try:
        for x in inputs:
            interp.set_tensor(in_idx, x[None])
            interp.invoke()
            outs.append(np.array(interp.get_tensor(out_idx))[0])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"LiteRT failed to run {_name(model)}: {first}") from exc
    return np.stack(outs)


def _name(model: Path | bytes) -> str:
    return "the model buffer" if isinstance(model, bytes | bytearray) else str(model)


def _load_cached(path: Path) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.array(data["raw"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # missing or corrupt (e.g. truncated) cache entry: recompute


def _store(path: Path, raw: np.ndarray) -> None:
    from harness.convert.variants import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, raw=raw)  # model outputs barely compress; deflating cost ~30 ms a variant
    atomic_write_bytes(path, buf.getvalue())


def reference_outputs(
    tflite_path: Path,
    eval_set: EvalSet,
    input_spec: InputSpec,
    output_spec: OutputSpec,
    *,
    cache_dir: Path | None = None,
    num_threads: int | None = None,
) -> ReferenceOutputs:
    """Desktop outputs of ``tflite_path`` on ``eval_set``, decoded per ``output_spec``.

    ``cache_dir`` defaults to ``$HARNESS_HOME/reference``; a model folder passes its own
    ``reference/``. The cache holds raw outputs only, so decoding overrides never go stale.
    """
    from harness import config

    tflite_path = Path(tflite_path)
    try:
        data = tflite_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {tflite_path}: {exc.strerror}") from exc
    sha = hashlib.sha256(data).hexdigest()
    cache_dir = Path(cache_dir) if cache_dir is not None else config.home_dir() / "reference"
    cache_path = cache_dir / f"{sha[:16]}-{eval_set.fingerprint[:16]}.npz"
    raw = _load_cached(cache_path)
    cached = raw is not None and raw.shape[0] == len(eval_set)
    if not cached:
        x = preprocess(eval_set.images, input_spec)
        raw = run_tflite(
            data,
            x,
            num_threads=num_threads,
            output_index=None if output_spec.index < 0 else output_spec.index,
        )
        _store(cache_path, raw)
    assert raw is not None
    fg_prob, mask = decode_outputs(raw, output_spec)
    return ReferenceOutputs(raw, fg_prob, mask, sha, eval_set.fingerprint, cached)
