"""Read any ``.tflite``: the harness's one reader, :mod:`harness.tflite.model`, under the name
convert, inspect, diagnose and bench import it by (it lives outside this package so that the
virtual phone can use it without importing ``harness.convert``)."""

from harness.tflite.model import OpInfo, TensorInfo, TfliteModel, read_tflite

__all__ = ["OpInfo", "TensorInfo", "TfliteModel", "read_tflite"]
