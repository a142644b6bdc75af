"""Pure parser for ``benchmark_model`` logs, every format generation in FACTS.md §1.

:func:`parse_log` takes stdout and stderr text (tool lines go to stdout, runtime lines such as
delegate messages to stderr) and returns a frozen :class:`BenchmarkLog`. It accepts
``INFO:``/``ERROR:``/``VERBOSE:`` prefixes, logcat headers (the benchmark APK logs to tag
``tflite``), CRLF, scientific notation and junk lines, and never raises: whatever could not be
read is simply absent (``None`` / empty).
"""

from __future__ import annotations

import re

from harness.runner.loglines import (
    MAX_LINE,
    PATTERNS,
    PROFILE_ROW,
    SUMMARY_ROW,
    delegate_name,
    parse_float,
    parse_int,
    parse_stats,
    strip_prefix,
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

__all__ = ["VIRTUAL_MARKER", "parse_log"]

# The virtual phone's benchmark_model announces itself with this (see docs/virtual-phone.md).
VIRTUAL_MARKER = "harness virtual phone"


class _State:
    """Mutable accumulator; turned into the frozen BenchmarkLog at the end."""

    def __init__(self) -> None:
        self.v: dict[str, object] = {}
        self.params: list[tuple[str, str]] = []
        self.phases: list[RunPhase] = []
        self.stats: list[tuple[int, RunStats]] = []  # (number of phases seen before, stats)
        self.verdicts: list[DelegateVerdict] = []
        self.replacements: list[Replacement] = []
        self.unsupported: list[UnsupportedOp] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.unconsumed: list[str] = []
        self.rows: list[OpProfileRow] = []
        self.summary: list[OpTypeSummary] = []
        self.in_unsupported = False
        self.section = ""  # "init" | "regular"
        self.table = ""


def _timings(state: _State, old: bool, rest: str) -> None:
    keys = {
        "init": "init_us",
        "first inference": "first_inference_us",
        "warmup (avg)": "warmup_avg_us",
        "warmup": "warmup_avg_us",
        "inference (avg)": "inference_avg_us",
        "inference": "inference_avg_us",
    }
    for part in rest.split(","):
        key, _, value = part.partition(":")
        field_name = keys.get(key.strip().lower())
        number = parse_float(value.strip())
        if field_name and number is not None:
            state.v[field_name] = number
    state.v["old_timing_format"] = old


def _profile_row(state: _State, text: str) -> None:
    if state.section != "regular" or len(text) > 600:
        return
    if state.table == "Run Order":
        m = PROFILE_ROW.match(text)
        if m:
            state.rows.append(
                OpProfileRow(
                    node_type=m["type"].strip(),
                    first_ms=float(m["first"]),
                    avg_ms=float(m["avg"]),
                    percent=float(m["pct"]),
                    cdf_percent=float(m["cdf"]),
                    mem_kb=float(m["mem"]),
                    times_called=int(m["times"]),
                    name=(m["name"] or "").strip(),
                    start_ms=parse_float(m["start"]) if m["start"] else None,
                )
            )
    elif state.table == "Summary by node type":
        m = SUMMARY_ROW.match(text)
        if m:
            state.summary.append(
                OpTypeSummary(
                    node_type=m["type"].strip(),
                    count=int(m["count"]),
                    avg_ms=float(m["avg"]),
                    percent=float(m["pct"]),
                    cdf_percent=float(m["cdf"]),
                    mem_kb=float(m["mem"]),
                    times_called=int(m["times"]),
                )
            )


def _unsupported_line(state: _State, worded: bool, text: str) -> bool:
    """Handle a line inside the unsupported-ops block; False ends the block."""
    for key in ("ops_split", "ops_old"):
        m = PATTERNS[key].search(text)
        if m:
            state.v["gpu_ops"], state.v["cpu_ops"] = parse_int(m.group(1)), parse_int(m.group(2))
            state.in_unsupported = False
            return True
    m = PATTERNS["ops_none"].search(text)
    if m:
        state.v["gpu_ops"], state.v["cpu_ops"] = 0, parse_int(m.group(1))
        state.in_unsupported = False
        return True
    m = PATTERNS["op_line"].match(text)
    if m and not worded:
        state.unsupported.append(UnsupportedOp(m.group(1), m.group(2).strip()))
        return True
    state.in_unsupported = False
    return False


def _line(state: _State, raw: str) -> None:
    if len(raw) > MAX_LINE:
        return
    severity, worded, text = strip_prefix(raw)
    if not text:
        return
    if state.in_unsupported and _unsupported_line(state, worded, text):
        return
    if severity in ("E", "F"):
        state.errors.append(text)
        if severity == "F":
            state.v["fatal"] = True
    elif severity == "W":
        state.warnings.append(text)
    if VIRTUAL_MARKER in text.lower():
        state.v["virtual"] = True
    if text.startswith("count="):
        stats = parse_stats(text)
        if stats is not None:
            state.stats.append((len(state.phases), stats))
        return
    m = PATTERNS["table"].match(text)
    if m:
        state.table = m.group(1).strip()
        return
    if text.startswith("Profiling Info for Benchmark Initialization"):
        state.section, state.table = "init", ""
        return
    if text.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"):
        state.section, state.table = "regular", ""
        return
    if state.section and state.table:
        _profile_row(state, text)
    if PATTERNS["unsupported_head"].match(text):
        state.in_unsupported = True
        return
    _facts(state, text)


def _facts(state: _State, text: str) -> None:
    """One line that is not a stat line, a table row or part of the unsupported-ops block."""
    v = state.v
    if m := PATTERNS["loaded"].match(text):
        v["model_path"] = m.group(1).strip()
    elif m := PATTERNS["size"].search(text):
        v["model_size_mb"] = parse_float(m.group(1))
    elif m := PATTERNS["session"].search(text):
        v["init_ms"] = parse_float(m.group(1))
    elif m := PATTERNS["phase"].search(text):
        secs, cap = parse_float(m.group(2)), parse_float(m.group(3))
        if secs is not None and cap is not None:
            state.phases.append(RunPhase(int(m.group(1)), secs, cap))
    elif m := PATTERNS["timings"].match(text):
        _timings(state, m.group(1).startswith("Average"), m.group(2))
    elif m := PATTERNS["mem_delta"].search(text):
        v["mem_init_mb"], v["mem_overall_mb"] = parse_float(m.group(2)), parse_float(m.group(3))
    elif m := PATTERNS["peak"].search(text):
        v["peak_mem_mb"] = parse_float(m.group(1))
    elif m := PATTERNS["vmrss"].match(text):
        v["vm_rss_mb"] = parse_float(m.group(1))
    elif m := PATTERNS["replacing"].search(text):
        total = parse_int(m.group(2)) if m.group(2) else None
        subgraph = parse_int(m.group(5)) if m.group(5) else None
        state.replacements.append(
            Replacement(
                delegate=m.group(3),
                replaced=int(m.group(1)),
                total=total,
                partitions=int(m.group(4)),
                subgraph=subgraph,
            )
        )
    elif m := PATTERNS["partial"].search(text):
        state.verdicts.append(DelegateVerdict(m.group(1), Verdict.PARTIAL, parse_int(m.group(2))))
    elif m := PATTERNS["full"].search(text):
        state.verdicts.append(DelegateVerdict(m.group(1), Verdict.FULL, 1))
    elif m := PATTERNS["not_applied"].search(text):
        state.verdicts.append(DelegateVerdict(m.group(1), Verdict.NOT_APPLIED, 0))
    elif m := PATTERNS["apply_failed"].match(text):
        state.verdicts.append(DelegateVerdict(m.group(1), Verdict.FAILED))
    elif m := PATTERNS["kernels"].search(text):
        v["delegate_kernels_gpu"] = parse_int(m.group(1))
    elif "Benchmarking failed" in text:
        v["failed"] = True
    elif "Created TensorFlow Lite XNNPACK delegate for CPU" in text:
        v["xnnpack_applied"] = True
    elif "Created TensorFlow Lite delegate for GPU" in text or text.startswith(
        "GPU delegate created"
    ):
        v["gpu_delegate_created"] = True
    elif "Initialized OpenCL-based API" in text:
        v["gpu_backend"] = GpuBackend.OPENCL
    elif "Initialized OpenGL-based API" in text:
        v["gpu_backend"] = GpuBackend.OPENGL
    elif "Falling back to OpenGL" in text:
        v["cl_to_gl_fallback"] = True
    elif "NNAPI acceleration is unsupported on this platform" in text:
        v["nnapi_unavailable"] = True
    elif m := PATTERNS["unconsumed"].search(text):
        state.unconsumed.extend(m.group(1).split())
    elif m := PATTERNS["param"].match(text):
        state.params.append((m.group(1).strip(), m.group(2)))
    if "Can not open OpenCL library" in text or (
        "libOpenCL" in text and re.search(r"not found|cannot open|No such file", text, re.I)
    ):
        v["opencl_missing"] = True


def _assign_stats(state: _State) -> tuple[RunStats | None, RunStats | None]:
    if not state.stats:
        return None, None
    if state.phases:
        # Stats printed after the first "Running benchmark" line are warmup, after the second
        # the regular runs (the tool prints the phase line before running it).
        by_phase: dict[int, RunStats] = {}
        for phase_count, stats in state.stats:
            by_phase.setdefault(phase_count, stats)
        return by_phase.get(1), by_phase.get(2)
    warmup = state.stats[0][1]
    inference = state.stats[1][1] if len(state.stats) > 1 else None
    return warmup, inference


def _verdict(state: _State) -> tuple[Verdict, str | None, int | None]:
    explicit = [d for d in state.verdicts if delegate_name(d.delegate) != "XNNPACK"]
    failed = [d for d in explicit if d.verdict is Verdict.FAILED]
    if failed:
        return Verdict.FAILED, delegate_name(failed[0].delegate), None
    if explicit:
        first = explicit[0]
        return first.verdict, delegate_name(first.delegate), first.kernels
    # Older builds print no verdict line: infer it from the replacement and unsupported ops.
    reps = [r for r in state.replacements if delegate_name(r.delegate) != "XNNPACK"]
    if reps:
        rep = reps[0]
        partial = (
            bool(state.unsupported)
            or (rep.total is not None and rep.replaced < rep.total)
            or rep.partitions > 1
        )
        kernels = state.v.get("delegate_kernels_gpu")
        return (
            (Verdict.PARTIAL if partial else Verdict.FULL),
            delegate_name(rep.delegate),
            (kernels if isinstance(kernels, int) else None),
        )
    if state.v.get("gpu_delegate_created"):
        if state.v.get("failed"):
            return Verdict.FAILED, "GPU", None
        return Verdict.NOT_APPLIED, "GPU", 0
    return Verdict.NONE, None, None


def _decode(text: object) -> str:
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", errors="replace")
    return text if isinstance(text, str) else ""


def parse_log(stdout: str, stderr: str = "") -> BenchmarkLog:
    """Parse one run's output. Never raises; fields it could not find are ``None``/empty."""
    state = _State()
    for chunk in (_decode(stdout), _decode(stderr)):
        state.in_unsupported = False
        state.section = state.table = ""
        for raw in chunk.splitlines():
            try:
                _line(state, raw)
            except Exception:  # a parser of captured text must not raise; skip the line
                state.in_unsupported = False
    try:
        return _build(state)
    except Exception:  # defensive: a parse bug must not hide the raw log from the caller
        return BenchmarkLog(error_lines=tuple(state.errors))


def _build(state: _State) -> BenchmarkLog:
    v = state.v
    warmup, inference = _assign_stats(state)
    verdict, delegate, kernels = _verdict(state)
    fatal = bool(v.get("fatal"))
    return BenchmarkLog(
        model_path=v.get("model_path"),
        model_size_mb=v.get("model_size_mb"),
        init_ms=v.get("init_ms"),
        params=tuple(state.params),
        phases=tuple(state.phases),
        stat_lines=tuple(s for _, s in state.stats),
        warmup=warmup,
        inference=inference,
        init_us=v.get("init_us"),
        first_inference_us=v.get("first_inference_us"),
        warmup_avg_us=v.get("warmup_avg_us"),
        inference_avg_us=v.get("inference_avg_us"),
        old_timing_format=bool(v.get("old_timing_format")),
        mem_init_mb=v.get("mem_init_mb"),
        mem_overall_mb=v.get("mem_overall_mb"),
        peak_mem_mb=v.get("peak_mem_mb"),
        vm_rss_mb=v.get("vm_rss_mb"),
        verdict=verdict,
        delegate=delegate,
        delegate_kernels=kernels,
        verdicts=tuple(
            DelegateVerdict(delegate_name(d.delegate), d.verdict, d.kernels) for d in state.verdicts
        ),
        replacements=tuple(state.replacements),
        unsupported_ops=tuple(state.unsupported),
        gpu_ops=v.get("gpu_ops"),
        cpu_ops=v.get("cpu_ops"),
        gpu_delegate_created=bool(v.get("gpu_delegate_created")),
        gpu_backend=v.get("gpu_backend"),
        opencl_missing=bool(v.get("opencl_missing")),
        cl_to_gl_fallback=bool(v.get("cl_to_gl_fallback")),
        nnapi_unavailable=bool(v.get("nnapi_unavailable")),
        xnnpack_applied=bool(v.get("xnnpack_applied")),
        failed=bool(v.get("failed")) or fatal,
        fatal=fatal,
        error_lines=tuple(state.errors),
        warning_lines=tuple(state.warnings),
        unconsumed_flags=tuple(state.unconsumed),
        op_profile=tuple(state.rows),
        op_summary=tuple(state.summary),
        virtual=bool(v.get("virtual")),
    )
