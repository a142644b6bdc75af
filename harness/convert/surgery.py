"""Heads from any float ``.tflite``: graph surgery, no retraining, no TensorFlow.

The mask output's final activation is cut back to its logits (``SOFTMAX`` -> its input,
``LOGISTIC`` -> its input, anything else: the output is taken as logits already), then each
requested head is appended with the same ops the Keras path uses (:mod:`harness.convert.heads`):

| logits   | softmax                       | sigmoid                     | logits | argmax            |
|----------|-------------------------------|-----------------------------|--------|-------------------|
| 2 ch.    | SOFTMAX                       | CONV_2D 1x1 [-1,+1] + LOGISTIC | z   | ARG_MAX (+SUB) + CAST |
| 1 ch. z  | SOFTMAX of CONCAT[z - z, z]   | LOGISTIC                    | z      | ARG_MAX of CONCAT + CAST |

A 1-channel logit z is the 2-class logit pair ``[0, z]`` (``sigmoid(z) = softmax([0, z])[1]``);
``z - z`` is an exact 0 for every finite z. The other outputs of the file are dropped, and ops
that only fed them are pruned. The edit uses ai-edge-litert's flatbuffer object API
(``schema_py_generated``, ``tools.flatbuffer_utils``); metadata buffers are kept, so a stated
input normalization survives. Quantized files are refused: their logits would need new
quantization parameters that only calibration can give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.convert.variants import Head
from harness.errors import ModelError, UsageError

__all__ = ["SURGERY_HEADS", "Cut", "find_logits", "make_head"]

SURGERY_HEADS = (Head.SOFTMAX, Head.SIGMOID, Head.LOGITS, Head.ARGMAX)
_CUTTABLE = ("SOFTMAX", "LOGISTIC")


@dataclass(frozen=True)
class Cut:
    """Where the logits are: the tensor, its channels, the activation cut, foreground."""

    tensor: int
    channels: int
    cut: str  # SOFTMAX | LOGISTIC | none
    foreground: int  # channel of the foreground logit in the 2-class pair (1 for 1 channel)

    def to_dict(self) -> dict[str, Any]:
        return {
            "logits_tensor": self.tensor,
            "logits_channels": self.channels,
            "cut": self.cut,
            "foreground_channel": self.foreground,
        }


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _load(data: bytes) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(data))


def _dump(model: Any) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _op_name(model: Any, op: Any) -> str:
    s = _schema()
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == s.BuiltinOperator.CUSTOM:
        return "CUSTOM"
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, str(builtin))


def _producer(graph: Any, tensor: int) -> Any | None:
    for op in graph.operators or []:
        if tensor in list(op.outputs):
            return op
    return None


def find_logits(
    data: bytes, output_tensor: int, fg_channel: int | None = None, where: str = "the model"
) -> Cut:
    """The logits behind the mask output ``output_tensor`` (a tensor index of subgraph 0)."""
    s = _schema()
    model = _load(data)
    graph = model.subgraphs[0]
    inputs = [graph.tensors[i] for i in graph.inputs]
    if any(t.type != s.TensorType.FLOAT32 for t in inputs):
        raise ModelError(
            f"{where} has a quantized input: heads are made from a float .tflite only "
            "(convert its float source, or import its Keras file)"
        )
    op = _producer(graph, output_tensor)
    name = _op_name(model, op) if op is not None else "none"
    logits = int(op.inputs[0]) if name in _CUTTABLE else output_tensor
    cut = name if name in _CUTTABLE else "none"
    tensor = graph.tensors[logits]
    if tensor.type != s.TensorType.FLOAT32 or (
        tensor.quantization is not None and tensor.quantization.scale is not None
    ):
        raise ModelError(
            f"{where}: the logits before {cut} are quantized; heads are made from a float "
            ".tflite only (requantizing needs calibration)"
        )
    shape = [int(d) for d in tensor.shape]
    channels = shape[3] if len(shape) == 4 else 1
    if len(shape) not in (3, 4) or channels not in (1, 2):
        raise ModelError(f"{where}: logits of shape {shape} are not a 1- or 2-class per-pixel map")
    if channels == 1:
        if fg_channel not in (None, 1, 0):
            raise UsageError(f"--fg-channel {fg_channel}: a 1-channel output has one channel")
        return Cut(logits, 1, cut, 1)
    fg = 1 if fg_channel is None else fg_channel
    if fg not in (0, 1):
        raise UsageError(f"--fg-channel {fg}: the logits have 2 channels")
    return Cut(logits, 2, cut, fg)


class _Editor:
    """Appends tensors and ops to subgraph 0 of a model object."""

    def __init__(self, model: Any) -> None:
        self.s = _schema()
        self.model = model
        self.graph = model.subgraphs[0]

    def tensor(
        self, shape: list[int], dtype: str, name: str, data: np.ndarray | None = None
    ) -> int:
        s = self.s
        t = s.TensorT()
        t.shape = np.asarray(shape, np.int32)
        t.type = {"float32": s.TensorType.FLOAT32, "int32": s.TensorType.INT32}.get(
            dtype, s.TensorType.UINT8
        )
        t.name = name
        buf = s.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        self.model.buffers.append(buf)
        t.buffer = len(self.model.buffers) - 1
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def _opcode(self, builtin: int) -> int:
        for i, code in enumerate(self.model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return i
        code = self.s.OperatorCodeT()
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = 1
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def op(self, name: str, inputs: list[int], outputs: list[int], options: Any = None) -> None:
        s = self.s
        op = s.OperatorT()
        op.opcodeIndex = self._opcode(getattr(s.BuiltinOperator, name))
        op.inputs = np.asarray(inputs, np.int32)
        op.outputs = np.asarray(outputs, np.int32)
        if options is not None:
            op.builtinOptionsType = getattr(s.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        self.graph.operators.append(op)

    def pair(self, logits: int, hw: list[int]) -> int:
        """The 2-class pair ``[z - z, z]`` of a 1-channel logit tensor."""
        zero = self.tensor([1, *hw, 1], "float32", "harness/zero")
        self.op("SUB", [logits, logits], [zero], self.s.SubOptionsT())
        z2 = self.tensor([1, *hw, 2], "float32", "harness/logits_pair")
        options = self.s.ConcatenationOptionsT()
        options.axis = 3
        self.op("CONCATENATION", [zero, logits], [z2], options)
        return z2

    def prune(self, keep: list[int]) -> None:
        """Drop ops none of whose outputs reach ``keep`` (the new graph outputs)."""
        self.graph.outputs = np.asarray(keep, np.int32)
        ops = list(self.graph.operators)
        while True:
            used = set(keep) | {int(i) for op in ops for i in op.inputs if i >= 0}
            alive = [op for op in ops if any(int(o) in used for o in op.outputs)]
            if len(alive) == len(ops):
                break
            ops = alive
        self.graph.operators = ops


def make_head(data: bytes, cut: Cut, head: Head) -> bytes:
    """A new .tflite: the model up to ``cut``'s logits, then ``head``; its only output."""
    head = Head(head)
    if head not in SURGERY_HEADS:
        known = ", ".join(str(h) for h in SURGERY_HEADS)
        raise UsageError(f"head {head} cannot be made from a .tflite (made: {known})")
    model = _load(data)
    ed = _Editor(model)
    s = ed.s
    shape = [int(d) for d in ed.graph.tensors[cut.tensor].shape]
    hw = shape[1:3]
    z = cut.tensor
    if head is Head.LOGITS:
        out = z
    elif head is Head.SIGMOID:
        diff = z
        if cut.channels == 2:
            w = np.full((1, 1, 1, 2), -1.0, np.float32)
            w[0, 0, 0, cut.foreground] = 1.0
            weights = ed.tensor([1, 1, 1, 2], "float32", "harness/fg_minus_bg", w)
            bias = ed.tensor([1], "float32", "harness/zero_bias", np.zeros(1, np.float32))
            diff = ed.tensor([1, *hw, 1], "float32", "harness/fg_minus_bg_out")
            options = s.Conv2DOptionsT()
            options.padding, options.strideW, options.strideH = s.Padding.VALID, 1, 1
            options.dilationWFactor = options.dilationHFactor = 1
            ed.op("CONV_2D", [z, weights, bias], [diff], options)
        out = ed.tensor([1, *hw, 1], "float32", "harness/sigmoid")
        ed.op("LOGISTIC", [diff], [out])
    else:
        pair = z if cut.channels == 2 else ed.pair(z, hw)
        if head is Head.SOFTMAX:
            out = ed.tensor([1, *hw, 2], "float32", "harness/softmax")
            options = s.SoftmaxOptionsT()
            options.beta = 1.0
            ed.op("SOFTMAX", [pair], [out], options)
        else:  # ARGMAX
            axis = ed.tensor([1], "int32", "harness/channel_axis", np.array([3], np.int32))
            idx = ed.tensor([1, *hw], "int32", "harness/argmax")
            options = s.ArgMaxOptionsT()
            options.outputType = s.TensorType.INT32
            ed.op("ARG_MAX", [pair, axis], [idx], options)
            if cut.foreground == 0:  # 1 = foreground whatever the channel order
                one = ed.tensor([1], "int32", "harness/one", np.array([1], np.int32))
                flipped = ed.tensor([1, *hw], "int32", "harness/argmax_fg")
                ed.op("SUB", [one, idx], [flipped], s.SubOptionsT())
                idx = flipped
            out = ed.tensor([1, *hw], "uint8", "harness/mask")
            options = s.CastOptionsT()
            options.inDataType, options.outDataType = s.TensorType.INT32, s.TensorType.UINT8
            ed.op("CAST", [idx], [out], options)
    ed.prune([out])
    model.signatureDefs = []  # they name the old outputs
    return _dump(model)
