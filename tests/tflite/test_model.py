"""The one .tflite reader, and the virtual phone's view of it, on a hand-built flatbuffer."""

from __future__ import annotations

import hashlib
import struct

import flatbuffers
import pytest
from ai_edge_litert import schema_py_generated as fb

from harness.errors import ModelError
from harness.tflite.model import Quantization, read_tflite
from harness.virtual.benchmark_model.tflite_graph import GraphError, read_graph


def _tensor(shape, dtype, name, buffer=0, quant=None) -> fb.TensorT:
    t = fb.TensorT()
    t.shape, t.type, t.name, t.buffer = list(shape), dtype, name, buffer
    if quant is not None:
        t.quantization = fb.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [quant[0]], [quant[1]]
    return t


def _buffer(data: bytes | None = None, offset: int = 0, size: int = 0) -> fb.BufferT:
    b = fb.BufferT()
    b.data, b.offset, b.size = (list(data) if data else None), offset, size
    return b


def _code(builtin: int, custom: str | None = None) -> fb.OperatorCodeT:
    c = fb.OperatorCodeT()
    c.builtinCode, c.deprecatedBuiltinCode = builtin, min(builtin, 127)
    c.customCode, c.version = custom, 1
    return c


def _op(code: int, inputs, outputs, options=None) -> fb.OperatorT:
    o = fb.OperatorT()
    o.opcodeIndex, o.inputs, o.outputs = code, list(inputs), list(outputs)
    if options is not None:
        o.builtinOptionsType, o.builtinOptions = fb.BuiltinOptions.SoftmaxOptions, options
    return o


def _model(subgraphs: bool = True) -> bytes:
    """x -> TRANSPOSE(perm) -> SOFTMAX(beta 2) -> QUANTIZE -> q, plus a custom op on x, an
    external-data constant and a tensor whose buffer has the exporter's placeholder offset 1."""
    m = fb.ModelT()
    m.version = 3
    m.buffers = [
        _buffer(),
        _buffer(struct.pack("<4i", 0, 1, 3, 2)),  # 1: perm
        _buffer(offset=4096, size=8),  # 2: stored outside the flatbuffer
        _buffer(offset=1, size=0),  # 3: placeholder, not data
    ]
    f32, i32, i8 = fb.TensorType.FLOAT32, fb.TensorType.INT32, fb.TensorType.INT8
    tensors = [
        _tensor((1, 4, 4, 2), f32, "x"),
        _tensor((4,), i32, "perm", buffer=1),
        _tensor((1, 4, 2, 4), f32, "xt", buffer=3),
        _tensor((1, 4, 2, 4), f32, "probs"),
        _tensor((1, 4, 2, 4), i8, None, quant=(0.5, -3)),
        _tensor((2,), f32, "w_ext", buffer=2),
        _tensor((1, 4, 4, 2), f32, "resampled"),
    ]
    m.operatorCodes = [
        _code(fb.BuiltinOperator.TRANSPOSE),
        _code(fb.BuiltinOperator.SOFTMAX),
        _code(fb.BuiltinOperator.QUANTIZE),
        _code(fb.BuiltinOperator.CUSTOM, "Resampler"),
    ]
    beta = fb.SoftmaxOptionsT()
    beta.beta = 2.0
    sub = fb.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs = tensors, [0], [4, 6]
    sub.operators = [
        _op(0, (0, 1), (2,)),
        _op(1, (2,), (3,), beta),
        _op(2, (3,), (4,)),
        _op(3, (0, 5), (6,)),
    ]
    m.subgraphs = [sub] if subgraphs else []
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_the_reader_reads_what_both_verdicts_need() -> None:
    data = _model()
    tm = read_tflite(data, verify=False)
    assert tm.sha256 == hashlib.sha256(data).hexdigest() and tm.size == len(data)
    assert tm.op_names == ("TRANSPOSE", "SOFTMAX", "QUANTIZE", "Resampler")
    assert tm.ops[3].custom and not tm.ops[1].custom
    assert tm.ops[1].options == {"beta": 2.0}
    assert (tm.input_indices, tm.output_indices) == ((0,), (4, 6))
    perm, xt, q, ext = tm.tensors[1], tm.tensors[2], tm.tensors[4], tm.tensors[5]
    assert perm.is_const and perm.value == (0.0, 1.0, 3.0, 2.0) and perm.dtype == "int32"
    assert ext.is_const and ext.value is None  # data outside the flatbuffer: const, no value
    assert not xt.is_const  # offset 1 is the exporter's placeholder, as the runtime reads it
    assert q.dtype == "int8" and q.quantization == Quantization(0.5, -3) and not q.per_channel
    assert q.name == "tensor_4"
    assert tm.producer(3) is tm.ops[1] and tm.producer(0) is None
    assert read_tflite(data, verify=False, digest=False).sha256 == ""


def test_the_virtual_graph_is_a_view_of_the_same_read() -> None:
    data = _model()
    tm, g = read_tflite(data, verify=False), read_graph(data)
    assert [op.op for op in g.ops] == list(tm.op_names)
    assert [op.name for op in g.ops] == list(tm.op_names)  # the spelling the op table reads
    for op, ref in zip(g.ops, tm.ops, strict=True):
        assert (op.index, op.version, op.inputs, op.outputs) == (
            ref.index,
            ref.version,
            ref.inputs,
            ref.outputs,
        )
        assert op.custom == ref.custom and op.options == ref.options
    for t, ref in zip(g.tensors, tm.tensors, strict=True):
        assert (t.index, t.name, t.shape, t.is_const, t.value) == (
            ref.index,
            ref.name,
            ref.shape,
            ref.is_const,
            ref.value,
        )
        assert t.dtype == ref.dtype.upper()  # the schema's spelling: "FLOAT32", "INT8"
    q = g.tensors[4]
    assert q.quantized and (q.scale, q.zero_point) == (0.5, -3)
    assert not g.tensors[0].quantized and g.tensors[0].scale is None
    assert (g.inputs, g.outputs) == ((0,), (4, 6)) and g.producer(4) is g.ops[2]


def test_both_readers_refuse_what_is_not_a_model() -> None:
    for bad in (b"not a model at all", b"\x00\x00\x00\x00TFL3" + b"\xff" * 4, _model(False)):
        with pytest.raises(ModelError):
            read_tflite(bad, verify=False)
        with pytest.raises(GraphError):
            read_graph(bad)
