"""The emulated GPU delegate on hand-built graphs: verdict tables and per-op numeric hooks."""

from __future__ import annotations

import numpy as np
import pytest

from harness.virtual.benchmark_model import gpu_emulation as ge
from harness.virtual.benchmark_model.tflite_graph import (
    Graph,
    GraphError,
    OpInfo,
    TensorInfo,
    read_graph,
)


def _graph(
    *ops: tuple[str, tuple[int, ...], tuple[int, ...], dict], tensors=None, outputs=None
) -> Graph:
    """Ops as (name, inputs, outputs, options); float32 [1,4,4,2] tensors unless given."""
    count = 1 + max(i for _, ins, outs, _ in ops for i in (*ins, *outs))
    tensors = tensors or {}
    infos = tuple(
        tensors.get(i, TensorInfo(i, f"t{i}", (1, 4, 4, 2), "FLOAT32", False)) for i in range(count)
    )
    op_infos = tuple(
        OpInfo(n, name, 1, ins, outs, False, opts) for n, (name, ins, outs, opts) in enumerate(ops)
    )
    return Graph(infos, op_infos, (0,), tuple(outputs or ops[-1][2]))


def test_softmax_with_beta_not_one_runs_on_cpu():
    g = _graph(("CONV_2D", (0,), (1,), {}), ("SOFTMAX", (1,), (2,), {"beta": 2.0}))
    plan = ge.plan_gpu(g)
    assert plan.delegated == (0,) and plan.partitions == 2 and not plan.full
    assert plan.unsupported == ("SOFTMAX: Softmax.beta != 1 is not supported.",)
    full = ge.plan_gpu(_graph(("CONV_2D", (0,), (1,), {}), ("SOFTMAX", (1,), (2,), {"beta": 1.0})))
    assert full.full and full.partitions == 1 and full.unsupported == ()


def test_only_the_largest_partition_is_delegated_by_default():
    g = _graph(
        ("CONV_2D", (0,), (1,), {}),
        ("CAST", (1,), (2,), {}),
        ("ADD", (2,), (3,), {}),
        ("MUL", (3,), (4,), {}),
    )
    plan = ge.plan_gpu(g)
    assert plan.supported == frozenset({0, 2, 3}) and plan.delegated == (2, 3)
    assert plan.partitions == 2  # [CONV_2D, CAST on the CPU] + [ADD, MUL on the GPU]
    assert ge.plan_gpu(g, max_partitions=2).delegated == (0, 2, 3)
    assert ge.plan_gpu(g, max_partitions=2).partitions == 3


def test_type_and_rank_constraints():
    int_in = {1: TensorInfo(1, "ids", (1, 4), "INT32", False)}
    g = _graph(("ADD", (0,), (1,), {}), tensors=int_in)
    assert ge.plan_gpu(g).unsupported == (f"ADD: {ge.TYPE_MISMATCH}",)
    five_d = {1: TensorInfo(1, "x", (1, 2, 2, 2, 2), "FLOAT32", False)}
    assert (
        ge.gpu_support(
            _graph(("ADD", (0,), (1,), {}), tensors=five_d).ops[0],
            _graph(("ADD", (0,), (1,), {}), tensors=five_d),
        )
        == ge.TYPE_MISMATCH
    )
    quant = {
        0: TensorInfo(0, "q", (1, 4, 4, 2), "INT8", False),
        1: TensorInfo(1, "q2", (1, 4, 4, 2), "INT8", False),
    }
    gq = _graph(("ADD", (0,), (1,), {}), tensors=quant)
    assert ge.gpu_support(gq.ops[0], gq) is None
    assert ge.gpu_support(gq.ops[0], gq, enable_quant=False) == ge.TYPE_MISMATCH
    const_shape = {2: TensorInfo(2, "shape", (2,), "INT32", True)}
    gr = _graph(("RESHAPE", (0, 2), (1,), {}), tensors=const_shape)
    assert ge.gpu_support(gr.ops[0], gr) is None  # constant int inputs are fine


def _values(**arrays) -> dict[int, np.ndarray]:
    return {int(k[1:]): v for k, v in arrays.items()}


def test_fp16_hooks_recompute_in_float16_and_cpu_ops_see_fp16_inputs():
    # t0 -> CONV_2D (GPU) -> t1 -> ARG_MAX (CPU) -> t2 ; axis constant t3
    tensors = {
        2: TensorInfo(2, "idx", (1, 4, 4), "INT64", False),
        3: TensorInfo(3, "axis", (), "INT32", True),
    }
    g = _graph(("CONV_2D", (0,), (1,), {}), ("ARG_MAX", (1, 3), (2,), {}), tensors=tensors)
    logits = np.zeros((1, 4, 4, 2), np.float32)
    logits[..., 0], logits[..., 1] = 1.0, 1.0002  # a difference FP16 cannot represent
    values = _values(
        t0=logits, t1=logits, t2=np.ones((1, 4, 4), np.int64), t3=np.array(-1, np.int32)
    )
    plan = ge.plan_gpu(g)
    fp16 = ge.Emulation("fp16", "cl", frozenset(plan.delegated))
    assert fp16.outputs(g, values.__getitem__)[0].tolist() == np.zeros((1, 4, 4)).tolist()
    fp32 = ge.Emulation("fp32", "cl", frozenset(plan.delegated))
    assert np.array_equal(fp32.outputs(g, values.__getitem__)[0], values[2])
    assert not fp16.needs_intermediates(Graph(g.tensors, g.ops[:1], (0,), (1,)))
    assert fp16.needs_intermediates(g)


def test_gpu_outputs_without_a_hook_are_rounded_to_float16():
    g = _graph(
        ("CONV_2D", (0,), (1,), {}),
        ("RESHAPE", (1,), (2,), {}),
        ("CAST", (2,), (3,), {}),
        outputs=(1, 2, 3),
    )
    plan = ge.plan_gpu(g)
    x = np.full((1, 4, 4, 2), 1.0001, np.float32)
    got = ge.Emulation("fp16", "gl", frozenset(plan.delegated)).outputs(g, lambda i: x)
    assert got[0][0, 0, 0, 0] == np.float32(np.float16(1.0001))  # GPU op: rounded
    assert got[1][0, 0, 0, 0] == np.float32(np.float16(1.0001))  # data movement: commutes
    assert got[2][0, 0, 0, 0] == np.float32(1.0001)  # CPU op: its own float32 result stands


def test_softmax_hook_in_float16_overflows_only_without_max_subtraction():
    op = OpInfo(0, "SOFTMAX", 1, (0,), (1,), False, {"beta": 1.0})
    x = np.array([[20.0, 0.0]], np.float32)  # exp(20) overflows float16 (max 65504)
    out = ge.HOOKS["SOFTMAX"]([x], op, np.float16)
    assert np.isfinite(out).all() and out[0, 0] == np.float16(1.0)


def test_a_generation_kernel_acts_on_its_op_wherever_it_sits():
    # t0 -> SOFTMAX (exposed as output t1) -> CONV_2D -> t2: a bisection model.
    g = _graph(("SOFTMAX", (0,), (1,), {"beta": 1.0}), ("CONV_2D", (1,), (2,), {}), outputs=(1, 2))
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[..., 0] = 12.0  # exp(12) > 65504: inf in float16
    values = {0: x, 1: np.ones_like(x), 2: np.ones_like(x)}
    delegated = frozenset(ge.plan_gpu(g).delegated)
    old_gl = ge.Emulation("fp16", "gl", delegated, "gl-2019", mediump_bits=16)
    out = old_gl.outputs(g, values.__getitem__)
    assert np.isnan(out[0]).any()  # inf / inf at the SOFTMAX output
    assert [op.op for op in old_gl.faulted_ops(g)] == ["SOFTMAX"]  # its values flow on
    old_cl = ge.Emulation("fp16", "cl", delegated, "cl-v2", mediump_bits=16)  # float exp
    assert np.isfinite(old_cl.outputs(g, values.__getitem__)[0]).all()
    current = ge.Emulation("fp16", "gl", delegated, "current", mediump_bits=16)
    assert np.isfinite(current.outputs(g, values.__getitem__)[0]).all()
    assert not current.faulted_ops(g)
    assert ge.resolve_hook("SOFTMAX", backend="gl", generation="current") is ge.HOOKS["SOFTMAX"]
    cpu_only = ge.Emulation("fp16", "gl", frozenset(), "gl-2019", mediump_bits=16)
    assert not cpu_only.faulted_ops(g)  # a GPU kernel acts only where the GPU runs the op


def test_read_graph_rejects_non_tflite_bytes():
    with pytest.raises(GraphError):
        read_graph(b"not a model at all")
    with pytest.raises(GraphError):
        read_graph(b"\x00\x00\x00\x00TFL3" + b"\xff" * 4)


def test_read_graph_on_a_converted_model(models):
    g = read_graph(models["argmax"].read_bytes())
    assert [op.op for op in g.ops] == ["CONV_2D", "CONV_2D", "ARG_MAX"]
    axis = g.tensors[g.ops[2].inputs[1]]
    assert axis.is_const and axis.dtype == "INT32"
    assert g.producer(g.outputs[0]) is g.ops[2] and g.producer(g.inputs[0]) is None
    assert read_graph(models["softmax"].read_bytes()).ops[-1].options == {"beta": 1.0}
