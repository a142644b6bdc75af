"""The on-device runner: TFLite ``benchmark_model`` command lines and log parsing (pure)."""

from harness.runner.flags import (
    DEFAULT_BINARY,
    DEFAULT_DELEGATE,
    BenchmarkInvocation,
    Delegate,
    InputLayer,
    delegate_label,
    is_cpu_delegate,
    parse_delegate,
)
from harness.runner.logmodel import (
    BenchmarkLog,
    DelegateVerdict,
    GpuBackend,
    OpProfileRow,
    OpTypeSummary,
    Replacement,
    RunPhase,
    RunStats,
    UnsupportedOp,
    Verdict,
)
from harness.runner.logparse import parse_log
from harness.runner.tool import WrongBenchmarkTool, ensure_official_tool, is_compiled_model_tool

__all__ = [
    "DEFAULT_BINARY",
    "DEFAULT_DELEGATE",
    "BenchmarkInvocation",
    "BenchmarkLog",
    "Delegate",
    "DelegateVerdict",
    "GpuBackend",
    "InputLayer",
    "OpProfileRow",
    "OpTypeSummary",
    "Replacement",
    "RunPhase",
    "RunStats",
    "UnsupportedOp",
    "Verdict",
    "WrongBenchmarkTool",
    "delegate_label",
    "is_cpu_delegate",
    "ensure_official_tool",
    "is_compiled_model_tool",
    "parse_delegate",
    "parse_log",
]
