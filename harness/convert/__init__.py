"""Variants of a trained model: heads x precisions as TFLite files, a manifest, inspection.

Importing this package never loads TensorFlow; the conversion functions load it when called.
"""

from harness.convert.folder import load_model_folder
from harness.convert.gpu import GpuVerdict, OpStatus, OpVerdict, gpu_verdict
from harness.convert.inspection import Inspection, inspect_tflite
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.specs import (
    Activation,
    InputSpec,
    Normalization,
    OutputSpec,
    Quantization,
    Semantics,
)
from harness.convert.tflite_model import TfliteModel, read_tflite
from harness.convert.variants import (
    Head,
    Manifest,
    Precision,
    Variant,
    VariantRecord,
    parse_heads,
    parse_precisions,
    read_manifest,
    write_manifest,
)

__all__ = [
    "Activation",
    "ConvertOptions",
    "GpuVerdict",
    "Head",
    "InputSpec",
    "Inspection",
    "Manifest",
    "Normalization",
    "OpStatus",
    "OpVerdict",
    "OutputSpec",
    "Precision",
    "Quantization",
    "Semantics",
    "TfliteModel",
    "Variant",
    "VariantRecord",
    "convert_model",
    "gpu_verdict",
    "inspect_tflite",
    "load_model_folder",
    "parse_heads",
    "parse_precisions",
    "read_manifest",
    "read_tflite",
    "write_manifest",
]
