"""TFLite models as the harness reads them: one flatbuffer reader and one GPU-delegate op table.

Light on purpose (numpy, the standard library and, on first use, ai-edge-litert's schema): the
virtual phone's ``benchmark_model`` imports it at start-up, and TensorFlow must never load there.
"""

from harness.tflite.gpu_ops import GPU_OPS, Finding, GpuOp, Level, findings
from harness.tflite.model import OpInfo, Quantization, TensorInfo, TfliteModel, read_tflite

__all__ = [
    "GPU_OPS",
    "Finding",
    "GpuOp",
    "Level",
    "OpInfo",
    "Quantization",
    "TensorInfo",
    "TfliteModel",
    "findings",
    "read_tflite",
]
