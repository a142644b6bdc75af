"""What :func:`harness.runner.parse_log` returns: frozen values read from a benchmark log."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "BenchmarkLog",
    "DelegateVerdict",
    "GpuBackend",
    "OpProfileRow",
    "OpTypeSummary",
    "Replacement",
    "RunPhase",
    "RunStats",
    "UnsupportedOp",
    "Verdict",
]


class Verdict(Enum):
    """How much of the graph the explicitly requested delegate took."""

    NONE = "none"  # no delegate explicitly applied (plain CPU / default XNNPACK)
    FULL = "full"
    PARTIAL = "partial"
    NOT_APPLIED = "not_applied"  # delegate created but took no node
    FAILED = "failed"  # ModifyGraphWithDelegate failed


class GpuBackend(Enum):
    OPENCL = "opencl"
    OPENGL = "opengl"


@dataclass(frozen=True)
class RunStats:
    """One ``count=... first=... curr=...`` line (microseconds). In the ``(all same)`` and
    ``count=1`` forms every statistic equals ``curr`` and ``std`` is 0."""

    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None
    p5: float | None = None
    median: float | None = None
    p95: float | None = None
    all_same: bool = False


@dataclass(frozen=True)
class RunPhase:
    """``Running benchmark for at least N iterations and at least S seconds but ...``."""

    min_runs: int
    min_secs: float
    max_secs: float


@dataclass(frozen=True)
class Replacement:
    """``Replacing N [out of M] node(s) with delegate (NAME) node, yielding K partitions``.
    ``partitions`` counts delegated and CPU node subsets together, as the runtime does."""

    delegate: str
    replaced: int
    total: int | None
    partitions: int
    subgraph: int | None = None


@dataclass(frozen=True)
class DelegateVerdict:
    delegate: str  # "GPU", "NNAPI", "XNNPACK", ...
    verdict: Verdict
    kernels: int | None = None


@dataclass(frozen=True)
class UnsupportedOp:
    op: str
    reason: str


@dataclass(frozen=True)
class OpProfileRow:
    """A ``Run Order`` row of the regular-runs op profile (times in ms)."""

    node_type: str
    first_ms: float
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int
    name: str
    start_ms: float | None = None  # older builds print a [start] column


@dataclass(frozen=True)
class OpTypeSummary:
    """A ``Summary by node type`` row of the regular-runs op profile."""

    node_type: str
    count: int
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int


@dataclass(frozen=True)
class BenchmarkLog:
    model_path: str | None = None
    model_size_mb: float | None = None
    init_ms: float | None = None  # "Initialized session in X ms."
    params: tuple[tuple[str, str], ...] = ()  # "Graph: [..]", "Num threads: [4]", ...
    phases: tuple[RunPhase, ...] = ()
    stat_lines: tuple[RunStats, ...] = ()
    warmup: RunStats | None = None
    inference: RunStats | None = None
    # "Inference timings in us: Init: .., First inference: .., Warmup (avg): ..,
    # Inference (avg): .." or the old "Average inference timings in us: Warmup: .., Init: ..,
    # Inference: ..".
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    old_timing_format: bool = False
    mem_init_mb: float | None = None
    mem_overall_mb: float | None = None
    peak_mem_mb: float | None = None
    vm_rss_mb: float | None = None
    verdict: Verdict = Verdict.NONE
    delegate: str | None = None
    delegate_kernels: int | None = None
    verdicts: tuple[DelegateVerdict, ...] = ()
    replacements: tuple[Replacement, ...] = ()
    unsupported_ops: tuple[UnsupportedOp, ...] = ()
    gpu_ops: int | None = None
    cpu_ops: int | None = None
    gpu_delegate_created: bool = False
    gpu_backend: GpuBackend | None = None
    opencl_missing: bool = False
    cl_to_gl_fallback: bool = False
    nnapi_unavailable: bool = False
    xnnpack_applied: bool = False
    failed: bool = False  # "Benchmarking failed." or a FATAL abort
    fatal: bool = False
    error_lines: tuple[str, ...] = ()
    warning_lines: tuple[str, ...] = ()
    unconsumed_flags: tuple[str, ...] = ()
    op_profile: tuple[OpProfileRow, ...] = ()
    op_summary: tuple[OpTypeSummary, ...] = ()
    virtual: bool = False

    @property
    def ok(self) -> bool:
        """The tool finished its regular runs without reporting a failure."""
        return not self.failed and self.inference is not None

    @property
    def main_replacement(self) -> Replacement | None:
        """The replacement made by the requested delegate (not the default XNNPACK one)."""
        for rep in self.replacements:
            if "xnnpack" not in rep.delegate.lower():
                return rep
        return self.replacements[-1] if self.replacements else None

    @property
    def replaced_nodes(self) -> int | None:
        rep = self.main_replacement
        return rep.replaced if rep else None

    @property
    def total_nodes(self) -> int | None:
        rep = self.main_replacement
        return rep.total if rep else None

    @property
    def partitions(self) -> int | None:
        rep = self.main_replacement
        return rep.partitions if rep else None

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None
