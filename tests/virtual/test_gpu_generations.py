"""The virtual SM-G973F's GPU softmax, generation by generation (FACTS.md §2's table).

For each GPU delegate generation x backend x precision, a 2-class softmax head on pixels whose
background logit is 10, 12 or 90 (foreground 0), computed by the emulation as the phone runs it
(a one-op graph, delegated, with the SM-G973F profile's mediump bits). ``ok`` = the true softmax
within FP16 rounding; ``nan`` = NaN background, foreground exactly 0 (inf/inf and x/inf).
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.tflite.gpu_delegates import FP16_EXP_LIMIT, FP32_EXP_LIMIT, GENERATIONS
from harness.virtual.benchmark_model import gpu_emulation as ge
from harness.virtual.benchmark_model.tflite_graph import Graph, OpInfo, TensorInfo
from harness.virtual.profiles import load_profile, resolve_delegate

LOGITS = (10.0, 12.0, 90.0)
# (generation, backend, precision) -> what the head gives at logits 10, 12, 90. None: the
# generation has no such backend (the 2019 delegate is OpenGL only).
EXPECTED = {
    ("gl-2019", "gl", "fp16"): ("ok", "nan", "nan"),  # mediump exp on Mali: inf past 11.09
    ("gl-2019", "gl", "fp32"): ("ok", "ok", "nan"),  # highp exp: inf past 88.72
    ("gl-2019", "cl", "fp16"): None,
    ("gl-2019", "cl", "fp32"): None,
    ("cl-v2", "cl", "fp16"): ("ok", "ok", "nan"),  # float exp even at FP16
    ("cl-v2", "cl", "fp32"): ("ok", "ok", "nan"),
    ("cl-v2", "gl", "fp16"): ("ok", "nan", "nan"),  # its GL fallback is the old GL kernel
    ("cl-v2", "gl", "fp32"): ("ok", "ok", "nan"),
    ("current", "cl", "fp16"): ("ok", "ok", "ok"),  # max subtracted
    ("current", "cl", "fp32"): ("ok", "ok", "ok"),
    ("current", "gl", "fp16"): ("ok", "ok", "ok"),
    ("current", "gl", "fp32"): ("ok", "ok", "ok"),
}


def _softmax_graph() -> Graph:
    tensors = tuple(TensorInfo(i, f"t{i}", (1, 1, 3, 2), "FLOAT32", False) for i in range(2))
    op = OpInfo(0, "SOFTMAX", 1, (0,), (1,), False, {"beta": 1.0})
    return Graph(tensors, (op,), (0,), (1,))


def _phone_softmax(generation: str, backend: str, precision: str) -> np.ndarray:
    profile = load_profile("SM-G973F")
    graph = _softmax_graph()
    emulation = ge.Emulation(
        precision,
        backend,
        frozenset(ge.plan_gpu(graph).delegated),
        generation,
        profile.mediump_bits,
    )
    x = np.array([[[[z, 0.0] for z in LOGITS]]], np.float32)
    cpu = np.exp(x - x.max(-1, keepdims=True))
    values = {0: x, 1: cpu / cpu.sum(-1, keepdims=True)}
    return emulation.outputs(graph, values.__getitem__)[0][0, 0].astype(np.float64)


def test_the_table_covers_every_generation_and_backend():
    assert {(g, b) for g, b, _ in EXPECTED} == {(g, b) for g in GENERATIONS for b in ("cl", "gl")}
    for (name, backend, _), row in EXPECTED.items():
        assert (row is None) == (GENERATIONS[name].kernel(backend) is None)
    assert load_profile("SM-G973F").mediump_bits == 16  # Mali-G76 (Arm's guide)
    assert round(FP16_EXP_LIMIT, 2) == 11.09 and round(FP32_EXP_LIMIT, 2) == 88.72


@pytest.mark.parametrize(("generation", "backend", "precision"), sorted(EXPECTED))
def test_softmax_head_by_generation(generation, backend, precision):
    row = EXPECTED[generation, backend, precision]
    if row is None:
        assert backend not in GENERATIONS[generation].backends
        return
    out = _phone_softmax(generation, backend, precision)
    for z, want, (bg, fg) in zip(LOGITS, row, out, strict=True):
        if want == "nan":
            assert np.isnan(bg) and fg == 0.0, (z, bg, fg)
        else:
            true_fg = 1.0 / (1.0 + np.exp(z))
            assert np.isfinite([bg, fg]).all(), (z, bg, fg)
            assert abs(bg - (1 - true_fg)) < 1e-3 and abs(fg - true_fg) < 1e-3, (z, bg, fg)


def test_the_per_slice_dot_is_mediump_too():
    """Two logits of 10.6: each exp fits FP16 (40135), their slice dot does not: both 0."""
    graph = _softmax_graph()
    emulation = ge.Emulation("fp16", "gl", frozenset({0}), "gl-2019", 16)
    x = np.full((1, 1, 3, 2), 10.6, np.float32)
    out = emulation.outputs(graph, {0: x, 1: np.full_like(x, 0.5)}.__getitem__)[0]
    assert (out == 0.0).all()


def test_mediump_not_established_is_computed_at_32_bits():
    """SM-G973U (Adreno 640): no source says its mediump is 16-bit, so no 11.09 overflow."""
    u = load_profile("SM-G973U")
    assert u.mediump_bits is None and u.mediump_label() == "not established"
    graph = _softmax_graph()
    emulation = ge.Emulation("fp16", "gl", frozenset({0}), "gl-2019", u.mediump_bits)
    x = np.array([[[[12.0, 0.0], [90.0, 0.0], [1.0, 0.0]]]], np.float32)
    out = emulation.outputs(graph, {0: x, 1: np.zeros_like(x)}.__getitem__)[0][0, 0]
    assert np.isfinite(out[0]).all() and np.isnan(out[1, 0])  # only float32's 88.72


def test_profile_generations():
    f, u = load_profile("SM-G973F"), load_profile("SM-G973U")
    assert resolve_delegate(f) == "gl-2019" and "2019" in f.delegate_why
    assert resolve_delegate(u) == "current" and "not established" in u.delegate_why
    assert resolve_delegate(f, "cl-v2") == "cl-v2"
    assert resolve_delegate(f, None, ("none",)) == "current"  # no emulated bug
    assert resolve_delegate(f, "gl-2019", ("none",)) == "gl-2019"
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="unknown GPU delegate generation 'gl-1999'"):
        resolve_delegate(f, "gl-1999")
