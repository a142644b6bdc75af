"""The virtual phone's GPU kernels and faults: each follows its mechanism, never a forced result."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UsageError
from harness.virtual import manager
from harness.virtual.benchmark_model import gpu_emulation as ge
from harness.virtual.benchmark_model.tail_model import cut_tail
from harness.virtual.benchmark_model.tflite_graph import OpInfo, read_graph
from harness.virtual.profiles import load_profile, resolve_faults

pytestmark = pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors")

SOFTMAX = OpInfo(0, "SOFTMAX", 1, (0,), (1,), False, {"beta": 1.0})


def test_softmax_without_max_subtraction_acts_exactly_past_the_fp16_exp_range():
    """The 2019 GL kernel on a Mali GPU (mediump = 16 bits) at FP16: computed, not forced."""
    hook = ge.resolve_hook("SOFTMAX", backend="gl", generation="gl-2019", mediump_bits=16)
    assert hook is not ge.HOOKS["SOFTMAX"]
    x = np.array([[11.0, 0.0], [11.2, 0.0], [0.0, 11.2], [10.6, 10.6], [3.0, -2.0]], np.float32)
    out = hook([x.astype(np.float16)], SOFTMAX, np.float16).astype(np.float64)
    assert np.allclose(out[0], [1.0, np.exp(-11.0)], atol=1e-3)  # 11.0 < 11.09: right
    assert np.isnan(out[1, 0]) and out[1, 1] == 0.0  # inf / inf, 1 / inf
    assert np.isnan(out[2, 1])
    assert (out[3] == 0.0).all()  # each exp fits, their mediump slice dot does not: 0
    assert np.allclose(out[4], [0.9933, 0.0067], atol=1e-3)
    assert pytest.approx(11.09, abs=0.01) == ge.FP16_EXP_LIMIT


def test_kernels_by_generation_backend_and_precision():
    plain = ge.HOOKS["SOFTMAX"]
    assert ge.resolve_hook("SOFTMAX", backend="cl", generation="current") is plain
    assert ge.resolve_hook("SOFTMAX", backend="gl", generation="current") is plain
    old_cl = ge.resolve_hook("SOFTMAX", backend="cl", generation="cl-v2", mediump_bits=16)
    x = np.array([[12.0, 0.0], [90.0, 0.0]], np.float32)
    out = old_cl([x], SOFTMAX, np.float16).astype(np.float64)  # float exp even at FP16
    assert np.isfinite(out[0]).all() and np.isnan(out[1, 0])  # inf only past ~88.72
    assert ge.resolve_hook("SOFTMAX", backend="nnapi", generation="gl-2019") is plain
    assert ge.resolve_hook("MEAN", backend="gl", generation="gl-2019") is None


def test_non_kernel_faults_and_retired_ones():
    assert ge.removed_backends(["opencl-missing"]) == {"cl"}
    assert set(ge.FAULT_NAMES) == {"opencl-missing"}
    f = load_profile("SM-G973F")
    for name in ("softmax-fp16-overflow", "softmax-unmasked-padding", "fp16-reduction-overflow"):
        with pytest.raises(UsageError, match=f"fault '{name}' was removed: "):
            resolve_faults(f, (name,))


def test_profile_defaults_and_requested_faults():
    f, u = load_profile("SM-G973F"), load_profile("SM-G973U")
    assert resolve_faults(f) == () and resolve_faults(u) == ()  # kernels come from the delegate
    assert resolve_faults(f, ("opencl-missing",)) == ("opencl-missing",)
    assert resolve_faults(f, ("none",)) == ()
    assert resolve_faults(f, ("none", "unauthorized")) == ("unauthorized",)
    with pytest.raises(UsageError, match="unknown fault 'nope'"):
        resolve_faults(f, ("nope",))
    with pytest.raises(UsageError, match="unknown fault"):
        manager.start("SM-G973F", faults=("nope",))  # refused before anything starts
    with pytest.raises(UsageError, match="unknown GPU delegate generation"):
        manager.start("SM-G973F", delegate="gl-1999")


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
