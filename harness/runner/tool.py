"""Tell the official TFLite ``benchmark_model`` from LiteRT's CompiledModel tool of the same name.

LiteRT's ``litert/tools`` builds another ``benchmark_model`` (``benchmark_litert_model``) on the
CompiledModel API: it has ``--use_npu``, ``--dispatch_library_path``, ``--use_cpu``,
``--result_file_path`` and its own results block, and no ``--output_filepath`` or
``--input_layer_value_files``, so the harness cannot feed it images or read its outputs.
"""

from __future__ import annotations

import re

from harness.errors import AssetError

__all__ = ["WrongBenchmarkTool", "ensure_official_tool", "is_compiled_model_tool"]

# Flags and log lines only the CompiledModel tool has.
_COMPILED_MODEL_MARKERS = re.compile(
    r"--?(?:use_npu|use_cpu|dispatch_library_(?:path|dir)|compiler_plugin_library_(?:path|dir)"
    r"|result_file_path|use_profiler)\b"
    r"|\b(?:dispatch_library_(?:path|dir)|compiler_plugin_library_(?:path|dir)|use_npu)\b"
    r"|=+ BENCHMARK RESULTS =+"
    r"|\bModel initialization:\s+[\d.]+ ms"
    r"|\bCompiled model not initialized\b"
    r"|\bCompiledModel\b",
)
# The official tool's --help lists these flags (the CompiledModel tool has neither).
_OFFICIAL_HELP = re.compile(r"^\s*--output_filepath=.*$", re.M)


def is_compiled_model_tool(help_or_log_text: str) -> bool:
    """True when the text (``--help`` output or a run log) comes from LiteRT's CompiledModel
    ``benchmark_model`` rather than the official TFLite one."""
    text = help_or_log_text if isinstance(help_or_log_text, str) else ""
    if not _COMPILED_MODEL_MARKERS.search(text):
        return False
    # A help text that lists --output_filepath is the official tool even if a marker word
    # appears somewhere in it (a log that merely *mentions* the flag does not count).
    return _OFFICIAL_HELP.search(text) is None


class WrongBenchmarkTool(AssetError):
    """The binary on the device is LiteRT's CompiledModel ``benchmark_model``."""

    MESSAGE = (
        "the benchmark_model on the device is LiteRT's CompiledModel tool (litert/tools), not the "
        "official TFLite benchmark_model: it has no --output_filepath, so outputs cannot be "
        "checked; install the official android_aarch64_benchmark_model (TFLite/LiteRT "
        "tflite/tools/benchmark)"
    )

    def __init__(self, path: str | None = None) -> None:
        where = f" ({path})" if path else ""
        super().__init__(self.MESSAGE.replace("on the device", f"on the device{where}", 1))


def ensure_official_tool(help_or_log_text: str, path: str | None = None) -> None:
    """Raise :class:`WrongBenchmarkTool` if the text comes from the CompiledModel tool."""
    if is_compiled_model_tool(help_or_log_text):
        raise WrongBenchmarkTool(path)
