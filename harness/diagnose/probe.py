"""Probe models: the same ``.tflite`` with intermediate tensors exposed as extra outputs.

A flatbuffer rewrite of subgraph 0's output list (schema object API bundled with ai-edge-litert:
``ModelT`` unpack, edit, ``Pack``). Ops, weights, buffers and tensor indices are untouched, so the
probe computes exactly what the model computes, and a delegate partitions it the same way; it
only also writes the chosen tensors out. Nothing is retrained. No TensorFlow import.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import config
from harness.convert.tflite_model import TfliteModel, read_tflite
from harness.errors import ModelError

__all__ = ["Probe", "exposable_tensors", "plan_probes", "rewrite_outputs", "write_probe"]

_NUMERIC = {"float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"}
PROBE_BUDGET = 64 * 1024 * 1024  # output bytes per image and probe model


def rewrite_outputs(model: bytes, outputs: Sequence[int]) -> bytes:
    """``model`` with subgraph 0's outputs replaced by ``outputs`` (tensor indices, in order)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    try:
        m = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    except Exception as exc:  # a corrupt flatbuffer fails in many ways
        raise ModelError(f"cannot rewrite the model: {type(exc).__name__}: {exc}") from exc
    sub = m.subgraphs[0]
    count = len(sub.tensors or [])
    bad = [t for t in outputs if not 0 <= t < count]
    if bad:
        raise ModelError(f"tensor indices {bad} are not in subgraph 0 ({count} tensors)")
    sub.outputs = [int(t) for t in outputs]
    m.signatureDefs = []  # a signature lists the original outputs only
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def exposable_tensors(model: TfliteModel) -> list[int]:
    """Op outputs in execution order that a probe can expose (numeric, static shape)."""
    seen: set[int] = set()
    out = []
    for op in model.ops:
        for index in op.outputs:
            tensor = model.tensor(index)
            if tensor is None or index in seen or tensor.is_const:
                continue
            if tensor.dtype not in _NUMERIC or any(d < 1 for d in tensor.shape):
                continue
            seen.add(index)
            out.append(index)
    return out


def tensor_bytes(model: TfliteModel, index: int) -> int:
    tensor = model.tensors[index]
    return int(np.prod(tensor.shape, dtype=np.int64)) * np.dtype(tensor.dtype).itemsize


@dataclass(frozen=True)
class Probe:
    """One probe model: its outputs are the model's own outputs, then ``exposed``."""

    path: Path
    sha256: str
    outputs: tuple[int, ...]  # every output tensor index, in output order
    exposed: tuple[int, ...]  # the intermediate tensors it adds (execution order)

    def sizes(self, model: TfliteModel) -> tuple[int, ...]:
        return tuple(tensor_bytes(model, t) for t in self.outputs)


def plan_probes(model: TfliteModel, budget: int = PROBE_BUDGET) -> list[list[int]]:
    """Exposable tensors split into chunks whose outputs fit ``budget`` bytes per image."""
    base = sum(tensor_bytes(model, t) for t in model.output_indices)
    chunks: list[list[int]] = [[]]
    used = base
    for index in exposable_tensors(model):
        if index in model.output_indices:
            continue
        size = tensor_bytes(model, index)
        if chunks[-1] and used + size > budget:
            chunks.append([])
            used = base
        chunks[-1].append(index)
        used += size
    return [c for c in chunks if c] or [[]]


def write_probe(model_path: Path, exposed: Sequence[int], folder: Path | None = None) -> Probe:
    """Write (or reuse) the probe of ``model_path`` exposing ``exposed``; cached by content."""
    data = Path(model_path).read_bytes()
    model = read_tflite(data, verify=False)
    outputs = list(model.output_indices) + [t for t in exposed if t not in model.output_indices]
    key = hashlib.sha256(data + repr(outputs).encode()).hexdigest()[:16]
    folder = folder or config.home_dir() / "diagnose" / "probes"
    path = folder / f"{key}.tflite"
    if not path.is_file():
        from harness.convert.variants import atomic_write_bytes

        atomic_write_bytes(path, rewrite_outputs(data, outputs))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return Probe(path, sha, tuple(outputs), tuple(t for t in outputs[len(model.outputs) :]))
