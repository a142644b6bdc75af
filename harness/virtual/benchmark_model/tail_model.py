"""How a faulted GPU op's output flows on: run the rest of the graph from the faulted values.

The virtual phone runs a model once on LiteRT in float32. A fault (``gpu_emulation.FAULTS``)
changes the output of the op it names; so that the ops after it see that value, as they would
on the phone, the rest of subgraph 0 is cut out as a model of its own (a *tail*: the ops after
the faulted one; its inputs are the non-constant tensors they read that were computed before)
and run on LiteRT with the faulted values fed in. Weights, ops and tensor indices are unchanged;
only the subgraph's op list, inputs and outputs differ (flatbuffer object API bundled with
ai-edge-litert). Imports only numpy, flatbuffers and ai-edge-litert.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter

from harness.virtual.benchmark_model.gpu_emulation import Emulation
from harness.virtual.benchmark_model.tflite_graph import Graph

Getter = Callable[[int], np.ndarray]


def _is_const(model: fb.ModelT, tensor: fb.TensorT) -> bool:
    index = int(tensor.buffer or 0)
    if index <= 0 or index >= len(model.buffers or []):
        return False
    buf = model.buffers[index]
    return (buf.data is not None and len(buf.data) > 0) or int(buf.offset or 0) > 1


def cut_tail(model: bytes, start: int) -> tuple[bytes, tuple[int, ...], tuple[int, ...]]:
    """Subgraph 0 from op ``start`` on, as a model: ``(bytes, input tensors, produced tensors)``."""
    m = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sub = m.subgraphs[0]
    ops = list(sub.operators or [])[start:]
    const = {i for i, t in enumerate(sub.tensors or []) if _is_const(m, t)}
    produced: list[int] = []
    for op in ops:
        produced += [int(t) for t in (op.outputs if op.outputs is not None else []) if t >= 0]
    made = set(produced)
    inputs: list[int] = []
    for op in ops:
        for t in op.inputs if op.inputs is not None else []:
            t = int(t)
            if t >= 0 and t not in made and t not in const and t not in inputs:
                inputs.append(t)
    sub.operators = ops
    sub.inputs = inputs
    sub.outputs = [int(t) for t in sub.outputs if int(t) in made] or produced[-1:]
    m.signatureDefs = []  # they name the original inputs and outputs
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), tuple(inputs), tuple(produced)


def propagate(model: bytes, graph: Graph, emulation: Emulation, get: Getter) -> Getter:
    """``get`` with every faulted op's output replaced by its faulted value and every tensor
    computed after it recomputed (float32, LiteRT) from those values, in execution order."""
    values: dict[int, np.ndarray] = {}

    def current(index: int) -> np.ndarray:
        return values[index] if index in values else np.asarray(get(index))

    for op in emulation.faulted_ops(graph):
        for tensor in op.outputs:
            if tensor >= 0:
                values[tensor] = emulation.value(graph, tensor, current)
        later = graph.ops[op.index + 1 :]
        if not any(t in o.inputs for o in later for t in op.outputs if t >= 0):
            continue  # nothing reads the faulted tensor
        tail, inputs, produced = cut_tail(model, op.index + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interp = Interpreter(model_content=tail, experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
        dtypes = {d["index"]: d["dtype"] for d in interp.get_input_details()}
        for tensor in inputs:
            interp.set_tensor(tensor, np.ascontiguousarray(current(tensor), dtype=dtypes[tensor]))
        interp.invoke()
        for tensor in produced:
            values[tensor] = np.array(interp.get_tensor(tensor))
    return current
