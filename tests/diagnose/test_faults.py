"""The virtual phone's fault table: each fault follows its mechanism, never a forced result."""

from __future__ import annotations

import numpy as np
import pytest

from harness.devices.virtual import gpu_emulation as ge
from harness.devices.virtual import manager
from harness.devices.virtual.profiles import load_profile, resolve_faults
from harness.devices.virtual.tail_model import cut_tail
from harness.devices.virtual.tflite_graph import OpInfo, read_graph
from harness.errors import UsageError

pytestmark = pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors")

SOFTMAX = OpInfo(0, "SOFTMAX", 1, (0,), (1,), False, {"beta": 1.0})


def _hook(name: str, op: str):
    [fault] = [f for f in ge.active_faults([name]) if f.op == op]
    return fault.hook


def test_softmax_overflow_acts_exactly_past_the_fp16_exp_range():
    hook = _hook("softmax-fp16-overflow", "SOFTMAX")
    x = np.array([[11.0, 0.0], [11.2, 0.0], [0.0, 11.2], [10.6, 10.6], [3.0, -2.0]], np.float32)
    out = hook([x.astype(np.float16)], SOFTMAX, np.float16).astype(np.float64)
    assert np.allclose(out[0], [1.0, np.exp(-11.0)], atol=1e-3)  # 11.0 < 11.09: right
    assert np.isnan(out[1, 0]) and out[1, 1] == 0.0  # inf / inf, 1 / inf
    assert np.isnan(out[2, 1])
    assert (out[3] == 0.0).all()  # each exp fits, their sum does not: 0 (FACTS.md §2)
    assert np.allclose(out[4], [0.9933, 0.0067], atol=1e-3)
    assert pytest.approx(11.09, abs=0.01) == ge.FP16_EXP_LIMIT


def test_unmasked_padding_shrinks_probabilities_only_with_padding_lanes():
    hook = _hook("softmax-unmasked-padding", "SOFTMAX")
    z = np.array([[0.5, 1.0]], np.float32)
    got = hook([z], SOFTMAX, np.float32)
    m = 1.0
    e = np.exp(z - m)
    expected = e / (e.sum() + 2 * np.exp(-m))  # two zero lanes in the 4-wide slice
    assert np.allclose(got, expected) and got.sum() < 0.8
    four = np.array([[0.5, 1.0, -1.0, 2.0]], np.float32)  # fills the slice: nothing to add
    assert np.allclose(hook([four], SOFTMAX, np.float32).sum(), 1.0)


def test_fp16_accumulator_overflows_only_past_65504():
    hook = _hook("fp16-reduction-overflow", "MEAN")
    op = OpInfo(0, "MEAN", 1, (0, 1), (2,), False, {})
    axes = np.array([1, 2], np.int32)
    big = np.full((1, 64, 64, 2), 20.0, np.float32)  # sum 81920 > 65504, mean 20 fits
    small = np.full((1, 64, 64, 2), 10.0, np.float32)  # sum 40960 fits
    assert np.isinf(hook([big.astype(np.float16), axes], op, np.float16)).all()
    assert np.allclose(hook([small.astype(np.float16), axes], op, np.float16), 10.0)
    assert {f.op for f in ge.active_faults(["fp16-reduction-overflow"])} == {"MEAN", "SUM"}


def test_fault_precisions_and_backends():
    kw = dict(backend="cl", faults=("softmax-fp16-overflow",))
    assert ge.resolve_hook("SOFTMAX", precision="fp16", **kw) is not ge.HOOKS["SOFTMAX"]
    assert ge.resolve_hook("SOFTMAX", precision="fp32", **kw) is ge.HOOKS["SOFTMAX"]
    kw = dict(backend="gl", faults=("softmax-unmasked-padding",))
    for precision in ("fp16", "fp32"):  # a kernel bug, not a precision one
        assert ge.resolve_hook("SOFTMAX", precision=precision, **kw) is not ge.HOOKS["SOFTMAX"]
    assert ge.removed_backends(["opencl-missing"]) == {"cl"}
    assert ge.removed_backends(["softmax-fp16-overflow"]) == set()
    assert set(ge.FAULT_NAMES) == {
        "softmax-fp16-overflow",
        "softmax-unmasked-padding",
        "fp16-reduction-overflow",
        "opencl-missing",
    }


def test_profile_defaults_and_requested_faults():
    f, u = load_profile("SM-G973F"), load_profile("SM-G973U")
    assert resolve_faults(f) == ("softmax-fp16-overflow",)  # Mali: on by default
    assert resolve_faults(u) == ()  # Adreno: none
    assert resolve_faults(f, ("opencl-missing",)) == ("softmax-fp16-overflow", "opencl-missing")
    assert resolve_faults(f, ("none",)) == ()
    assert resolve_faults(f, ("none", "softmax-unmasked-padding")) == ("softmax-unmasked-padding",)
    with pytest.raises(UsageError, match="unknown fault 'nope'"):
        resolve_faults(f, ("nope",))
    with pytest.raises(UsageError, match="unknown fault"):
        manager.start("SM-G973F", faults=("nope",))  # refused before anything starts


def test_tail_model_recomputes_the_rest_of_the_graph(mid_softmax):
    from ai_edge_litert.interpreter import Interpreter

    data = mid_softmax.read_bytes()
    graph = read_graph(data)
    [softmax] = [op for op in graph.ops if op.op == "SOFTMAX"]
    full = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    full.allocate_tensors()
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    full.set_tensor(full.get_input_details()[0]["index"], x)
    full.invoke()
    tail, inputs, produced = cut_tail(data, softmax.index + 1)
    assert inputs == softmax.outputs and graph.outputs[0] in produced
    part = Interpreter(model_content=tail)
    part.allocate_tensors()
    part.set_tensor(inputs[0], full.get_tensor(inputs[0]))
    part.invoke()
    out = graph.outputs[0]
    assert np.array_equal(part.get_tensor(out), full.get_tensor(out))  # same ops, same weights
