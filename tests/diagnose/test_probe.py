"""Probe models expose intermediate tensors without changing what the model computes."""

from __future__ import annotations

import numpy as np
import pytest

from harness.convert.tflite_model import read_tflite
from harness.diagnose.localize import tensor_error
from harness.diagnose.probe import exposable_tensors, plan_probes, tensor_bytes, write_probe

pytestmark = pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors")


def _run(path, x, preserve=False):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=preserve)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp


def test_probe_exposes_every_op_output_and_changes_nothing_else(mid_softmax, tmp_path):
    model = read_tflite(mid_softmax)
    exposed = exposable_tensors(model)
    assert [model.producer(t).name for t in exposed][:3] == ["CONV_2D", "CONV_2D", "SOFTMAX"]
    probe = write_probe(mid_softmax, exposed, tmp_path)
    pm = read_tflite(probe.path)
    assert pm.output_indices[0] == model.output_indices[0]  # the model's own output first
    assert set(pm.output_indices) == set(exposed) | set(model.output_indices)
    assert pm.op_names == model.op_names and len(pm.tensors) == len(model.tensors)
    x = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    ref = _run(mid_softmax, x, preserve=True)
    got = _run(probe.path, x)
    for t in pm.output_indices:
        assert np.array_equal(got.get_tensor(t), ref.get_tensor(t)), t
    assert write_probe(mid_softmax, exposed, tmp_path).path == probe.path  # cached by content


def test_probes_are_split_to_fit_the_budget(mid_softmax):
    model = read_tflite(mid_softmax)
    sizes = {t: tensor_bytes(model, t) for t in exposable_tensors(model)}
    chunks = plan_probes(model, budget=max(sizes.values()) * 2)
    assert len(chunks) > 1
    assert sorted(t for c in chunks for t in c) == sorted(
        t for t in sizes if t not in model.output_indices
    )


def test_tensor_error_separates_fp16_rounding_from_a_fault(mid_softmax):
    model = read_tflite(mid_softmax)
    t = exposable_tensors(model)[2]  # the SOFTMAX output
    ref = np.random.default_rng(2).uniform(0, 1, (1, 1, 64, 64, 2)).astype(np.float32)
    rounded = ref.astype(np.float16).astype(np.float32)
    assert not tensor_error(model, t, rounded, ref, 0.05).diverges
    broken = ref.copy()
    broken[0, 0, 0, 0, 0] = np.nan
    err = tensor_error(model, t, broken, ref, 0.05)
    assert err.diverges and err.nonfinite == 1 and err.op == "SOFTMAX"
