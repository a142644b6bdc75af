"""The one GPU-delegate op table: the static verdict and the virtual phone read it the same way."""

from __future__ import annotations

import pytest

from harness.convert.gpu import OpStatus, gpu_verdict
from harness.tflite.gpu_ops import GPU_OPS, LAYOUT_OPS, Level, findings
from harness.tflite.model import OpInfo, TensorInfo, TfliteModel
from harness.virtual.benchmark_model import gpu_emulation as ge
from harness.virtual.benchmark_model import tflite_graph as vg

FLOAT = ((1, 4, 4, 2), "float32")


def _both(
    *ops: tuple[str, tuple[int, ...], tuple[int, ...], dict],
    tensors: dict[int, tuple[tuple[int, ...], str]] | None = None,
    const: dict[int, tuple[float, ...] | None] | None = None,
) -> tuple[TfliteModel, vg.Graph]:
    """One graph as the reader returns it and as the virtual phone sees it. Ops are (name,
    inputs, outputs, options), custom if not upper case; tensors float32 [1,4,4,2] unless
    given; ``const``: the constant tensors and their values (None: too large to keep)."""
    count = 1 + max(i for _, ins, outs, _ in ops for i in (*ins, *outs))
    tensors, const = tensors or {}, const or {}
    infos = []
    for i in range(count):
        shape, dtype = tensors.get(i, FLOAT)
        infos.append(TensorInfo(i, f"t{i}", shape, dtype, None, i in const, const.get(i)))
    op_infos = [
        OpInfo(n, name, ins, outs, not name.isupper(), 1, opts)
        for n, (name, ins, outs, opts) in enumerate(ops)
    ]
    outputs = ops[-1][2]
    model = TfliteModel(None, 0, "", tuple(infos), tuple(op_infos), (0,), outputs)
    graph = vg.Graph(
        tuple(
            vg.TensorInfo(t.index, t.name, t.shape, t.dtype.upper(), t.is_const, value=t.value)
            for t in infos
        ),
        tuple(
            vg.OpInfo(o.index, o.name, 1, o.inputs, o.outputs, o.custom, o.options)
            for o in op_infos
        ),
        (0,),
        outputs,
    )
    return model, graph


@pytest.mark.parametrize("name", sorted(GPU_OPS))
def test_both_verdicts_read_each_op_of_the_table_alike(name: str) -> None:
    model, graph = _both((name, (0,), (1,), {}))
    levels = {f.level for f in findings(model.ops[0], model)}
    status = gpu_verdict(model).issues[0].status if levels else OpStatus.GPU
    virtual = ge.gpu_support(graph.ops[0], graph)
    if Level.CPU in levels:
        assert status is OpStatus.CPU and virtual == ge.NOT_SUPPORTED
    elif Level.RECENT in levels:  # the virtual phone emulates a phone-era delegate
        assert status is OpStatus.WARN and virtual == ge.NOT_SUPPORTED
    elif Level.CAVEAT in levels:
        assert status is OpStatus.WARN and virtual is None
    else:
        assert status is OpStatus.GPU and virtual is None


def test_ops_outside_the_table_run_on_the_cpu_on_both_sides() -> None:
    for name in ("ARG_MIN", "GATHER_ND", "UNPACK", "MyCustomOp"):
        model, graph = _both((name, (0,), (1,), {}))
        [issue] = gpu_verdict(model).issues
        assert issue.status is OpStatus.CPU and name in issue.reason
        assert ge.gpu_support(graph.ops[0], graph) == ge.NOT_SUPPORTED


def test_where_the_two_old_tables_disagreed() -> None:
    # Parsed by every targeted delegate: the virtual phone now takes them too.
    for name in ("DENSIFY", "LSTM", "Resampler"):
        model, graph = _both((name, (0,), (1,), {}))
        assert gpu_verdict(model).delegation == "full"
        assert ge.plan_gpu(graph).full
    # Only recent delegates take them: the static verdict warns (it used to say plain GPU), the
    # virtual phone keeps them on the CPU.
    for name in ("EQUAL", "LESS", "LOGICAL_AND", "SELECT_V2", "CUMSUM", "ONE_HOT", "CAST"):
        model, graph = _both((name, (0,), (1,), {}))
        verdict = gpu_verdict(model)
        assert verdict.delegation == "full" and verdict.warnings[0].op == name
        assert "recent GPU delegates" in verdict.warnings[0].reason
        assert ge.plan_gpu(graph).unsupported == (f"{name}: {ge.NOT_SUPPORTED}",)


def test_softmax_constraints_on_both_sides() -> None:
    model, graph = _both(("SOFTMAX", (0,), (1,), {"beta": 2.0}))
    assert gpu_verdict(model).cpu_ops[0].reason.startswith("SOFTMAX beta=2")
    assert ge.gpu_support(graph.ops[0], graph) == "Softmax.beta != 1 is not supported."
    # batch != 1: the delegate's softmax checks only beta, so it is a caveat, not a fallback
    model, graph = _both(("SOFTMAX", (0,), (1,), {}), tensors={0: ((2, 4, 4, 2), "float32")})
    assert [(v.status, "batch 2" in v.reason) for v in gpu_verdict(model).issues] == [
        (OpStatus.WARN, True)
    ]
    assert ge.gpu_support(graph.ops[0], graph) is None
    # a softmax over a non-channel axis runs between TRANSPOSEs: a caveat
    model, graph = _both(
        ("TRANSPOSE", (0, 2), (1,), {}),
        ("SOFTMAX", (1,), (3,), {}),
        tensors={2: ((4,), "int32")},
        const={2: (0.0, 3.0, 2.0, 1.0)},
    )
    [issue] = gpu_verdict(model).issues
    assert issue.status is OpStatus.WARN and "perm=[0, 3, 2, 1]" in issue.reason
    assert ge.plan_gpu(graph).full


def test_rank_and_type_limits() -> None:
    five_d = {1: ((1, 2, 2, 2, 2), "float32")}
    model, graph = _both(("ADD", (0,), (1,), {}), tensors=five_d)
    assert (
        gpu_verdict(model).cpu_ops[0].reason
        == "ADD on a rank-5 tensor (GPU tensors are at most 4-D)"
    )
    assert ge.gpu_support(graph.ops[0], graph) == ge.TYPE_MISMATCH
    # runtime types: only the emulated delegate checks them (a static verdict cannot know the
    # delegate's quantization flag)
    ints = {1: ((1, 4), "int32")}
    model, graph = _both(("ADD", (0,), (1,), {}), tensors=ints)
    assert gpu_verdict(model).delegation == "full"
    assert ge.gpu_support(graph.ops[0], graph) == ge.TYPE_MISMATCH
    # hybrid (dynamic-range) convolutions: delegated, with a caveat
    model, graph = _both(
        ("CONV_2D", (0, 2), (1,), {}), tensors={2: ((2, 1, 1, 2), "int8")}, const={2: None}
    )
    assert gpu_verdict(model).warnings[0].reason.startswith("CONV_2D is a dynamic-range")
    assert ge.gpu_support(graph.ops[0], graph) is None


def test_layout_ops_only_move_data() -> None:
    assert {"RESHAPE", "TRANSPOSE", "SQUEEZE", "UNPACK"} <= LAYOUT_OPS
    assert not LAYOUT_OPS & {"CONV_2D", "SOFTMAX", "ADD", "RESIZE_BILINEAR"}
