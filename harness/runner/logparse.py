"""Pure parser for ``benchmark_model`` logs, every format generation in FACTS.md §1.

:func:`parse_log` takes stdout and stderr text (tool lines go to stdout, runtime lines such as
delegate messages to stderr) and returns a frozen :class:`BenchmarkLog`. It accepts
``INFO:``/``ERROR:``/``VERBOSE:`` prefixes, logcat headers (the benchmark APK logs to tag
``tflite``), CRLF, scientific notation and junk lines, and never raises: whatever could not be
read is simply absent (``None`` / empty).
"""

from __future__ import annotations

import re

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

_MAX_LINE = 4000  # longer lines are junk for this format; skip them (keeps regexes linear)


# -- line prefixes -----------------------------------------------------------------------------
_SEVERITY_WORDS = {
    "INFO": "I",
    "WARN": "W",
    "WARNING": "W",
    "ERROR": "E",
    "FATAL": "F",
    "VERBOSE": "V",
    "DEBUG": "D",
}
_WORD_PREFIX = re.compile(r"^(INFO|WARNING|WARN|ERROR|FATAL|VERBOSE|DEBUG)\s*:\s?")
_LOGCAT_THREADTIME = re.compile(
    r"^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+([VDIWEF])\s+[^\s:]+\s*:\s?"
)
_LOGCAT_BRIEF = re.compile(r"^([VDIWEF])/[^\s(:]+\s*(?:\(\s*\d+\))?\s*:\s?")
_ABSL = re.compile(r"^([IWEF])\d{4}\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\S+:\d+\]\s?")


def _strip(line: str) -> tuple[str | None, bool, str]:
    """-> (severity letter or None, had a textual ``INFO:``-style prefix, text)."""
    text = line.strip()
    severity: str | None = None
    for pattern in (_LOGCAT_THREADTIME, _LOGCAT_BRIEF, _ABSL):
        m = pattern.match(text)
        if m:
            severity, text = m.group(1), text[m.end() :].strip()
            break
    m = _WORD_PREFIX.match(text)
    if m:
        return _SEVERITY_WORDS[m.group(1)], True, text[m.end() :].strip()
    return severity, False, text


# -- numbers -----------------------------------------------------------------------------------
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_KV = re.compile(r"\b(count|first|curr|min|max|avg|std|p5|median|p95)=(" + _NUM + ")", re.I)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError, OverflowError):
        return None


def _int(text: str) -> int | None:
    if text is None or len(text) > 18:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _parse_stats(text: str) -> RunStats | None:
    if not text.startswith("count="):
        return None
    values: dict[str, float | None] = {}
    for key, raw in _KV.findall(text):
        values.setdefault(key.lower(), _float(raw))
    count = values.get("count")
    if count is None or count != count or count < 0 or count > 2**62:
        return None
    n = int(count)
    same = "(all same)" in text or (n == 1 and "first" not in values)
    if same:
        curr = values.get("curr")
        for key in ("first", "min", "max", "avg"):
            values.setdefault(key, curr)
        values.setdefault("std", 0.0 if curr is not None else None)
    return RunStats(
        count=n,
        first=values.get("first"),
        curr=values.get("curr"),
        min=values.get("min"),
        max=values.get("max"),
        avg=values.get("avg"),
        std=values.get("std"),
        p5=values.get("p5"),
        median=values.get("median"),
        p95=values.get("p95"),
        all_same=same,
    )


# -- single-line patterns ----------------------------------------------------------------------
_RE = {
    "loaded": re.compile(r"^Loaded model (.+)$"),
    "size": re.compile(r"The input model file size \(MB\):\s*(" + _NUM + ")", re.I),
    "session": re.compile(r"Initialized session in\s*(" + _NUM + r")\s*ms", re.I),
    "phase": re.compile(
        r"Running benchmark for at least (\d{1,12}) iterations and at least ("
        + _NUM
        + r") seconds but terminate if exceeding ("
        + _NUM
        + ") seconds",
        re.I,
    ),
    "timings": re.compile(r"^(Average inference timings|Inference timings) in us:\s*(.*)$"),
    "mem_delta": re.compile(
        r"(Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):"
        r"\s*init=(" + _NUM + r")\s+overall=(" + _NUM + ")",
        re.I,
    ),
    "peak": re.compile(
        r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*(" + _NUM + ")", re.I
    ),
    "vmrss": re.compile(r"^- VmRSS\s*:\s*(" + _NUM + r")\s*MB"),
    "replacing": re.compile(
        r"Replacing (\d{1,12})(?: out of (\d{1,12}))? node\(s\) with delegate \(([^()]*)\) node,"
        r" yielding (\d{1,12}) partitions?(?: for subgraph (\d{1,12}))?"
    ),
    "full": re.compile(
        r"Explicitly applied (.+?) delegate, and the model graph will be"
        r" completely executed by the delegate"
    ),
    "partial": re.compile(
        r"Explicitly applied (.+?) delegate, and the model graph will be"
        r" partially executed by the delegate w/ (\d{1,12}) delegate kernels"
    ),
    "not_applied": re.compile(
        r"Though (.+?) delegate is explicitly applied, the model graph"
        r" will not be executed by the delegate"
    ),
    "apply_failed": re.compile(r"^Failed to apply (.+?) delegate"),
    "unsupported_head": re.compile(
        r"^(?:Following|Next) operations are not supported by GPU"
        r" delegate:?\s*$"
    ),
    "ops_split": re.compile(
        r"(\d{1,12}) operations will run on the GPU, and the remaining"
        r" (\d{1,12}) operations will run on the CPU"
    ),
    "ops_none": re.compile(
        r"No operations will run on the GPU, and all (\d{1,12}) operations"
        r" will run on the CPU"
    ),
    "ops_old": re.compile(
        r"First (\d{1,12}) operations will run on the GPU, and the remaining"
        r" (\d{1,12}) on the CPU"
    ),
    "op_line": re.compile(r"^([A-Za-z][A-Za-z0-9_]{0,80})\s*:\s*(.*)$"),
    "kernels": re.compile(r"Created (\d{1,12}) GPU delegate kernels"),
    "param": re.compile(r"^([A-Za-z#][^:\[\]]{0,80}): \[(.*)\]$"),
    "unconsumed": re.compile(r"Unconsumed cmdline flags:\s*(.*)$"),
    "table": re.compile(r"^=+ (.+?) =+$"),
}
_ROW = re.compile(
    r"^(?P<type>\S.*?)\s+(?:(?P<start>"
    + _NUM
    + r")\s+)?(?P<first>"
    + _NUM
    + r")\s+(?P<avg>"
    + _NUM
    + r")\s+(?P<pct>"
    + _NUM
    + r")%\s+(?P<cdf>"
    + _NUM
    + r")%\s+(?P<mem>"
    + _NUM
    + r")\s+(?P<times>\d{1,12})(?:\s+(?P<name>.*))?$"
)
_SUMMARY = re.compile(
    r"^(?P<type>\S.*?)\s+(?P<count>\d{1,12})\s+(?P<avg>"
    + _NUM
    + r")\s+(?P<pct>"
    + _NUM
    + r")%\s+(?P<cdf>"
    + _NUM
    + r")%\s+(?P<mem>"
    + _NUM
    + r")\s+(?P<times>\d{1,12})\s*$"
)

_DELEGATE_ALIASES = {
    "tflitegpudelegatev2": "GPU",
    "tflitegpudelegate": "GPU",
    "tflitennapidelegate": "NNAPI",
    "tflitexnnpackdelegate": "XNNPACK",
}


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
        number = _float(value.strip())
        if field_name and number is not None:
            state.v[field_name] = number
    state.v["old_timing_format"] = old


def _profile_row(state: _State, text: str) -> None:
    if state.section != "regular" or len(text) > 600:
        return
    if state.table == "Run Order":
        m = _ROW.match(text)
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
                    start_ms=_float(m["start"]) if m["start"] else None,
                )
            )
    elif state.table == "Summary by node type":
        m = _SUMMARY.match(text)
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
        m = _RE[key].search(text)
        if m:
            state.v["gpu_ops"], state.v["cpu_ops"] = _int(m.group(1)), _int(m.group(2))
            state.in_unsupported = False
            return True
    m = _RE["ops_none"].search(text)
    if m:
        state.v["gpu_ops"], state.v["cpu_ops"] = 0, _int(m.group(1))
        state.in_unsupported = False
        return True
    m = _RE["op_line"].match(text)
    if m and not worded:
        state.unsupported.append(UnsupportedOp(m.group(1), m.group(2).strip()))
        return True
    state.in_unsupported = False
    return False


def _line(state: _State, raw: str) -> None:
    if len(raw) > _MAX_LINE:
        return
    severity, worded, text = _strip(raw)
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
        stats = _parse_stats(text)
        if stats is not None:
            state.stats.append((len(state.phases), stats))
        return
    m = _RE["table"].match(text)
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
    if _RE["unsupported_head"].match(text):
        state.in_unsupported = True
        return
    _facts(state, text)


def _facts(state: _State, text: str) -> None:
    """One line that is not a stat line, a table row or part of the unsupported-ops block."""
    v = state.v
    if m := _RE["loaded"].match(text):
        v["model_path"] = m.group(1).strip()
    elif m := _RE["size"].search(text):
        v["model_size_mb"] = _float(m.group(1))
    elif m := _RE["session"].search(text):
        v["init_ms"] = _float(m.group(1))
    elif m := _RE["phase"].search(text):
        secs, cap = _float(m.group(2)), _float(m.group(3))
        if secs is not None and cap is not None:
            state.phases.append(RunPhase(int(m.group(1)), secs, cap))
    elif m := _RE["timings"].match(text):
        _timings(state, m.group(1).startswith("Average"), m.group(2))
    elif m := _RE["mem_delta"].search(text):
        v["mem_init_mb"], v["mem_overall_mb"] = _float(m.group(2)), _float(m.group(3))
    elif m := _RE["peak"].search(text):
        v["peak_mem_mb"] = _float(m.group(1))
    elif m := _RE["vmrss"].match(text):
        v["vm_rss_mb"] = _float(m.group(1))
    elif m := _RE["replacing"].search(text):
        total = _int(m.group(2)) if m.group(2) else None
        subgraph = _int(m.group(5)) if m.group(5) else None
        state.replacements.append(
            Replacement(
                delegate=m.group(3),
                replaced=int(m.group(1)),
                total=total,
                partitions=int(m.group(4)),
                subgraph=subgraph,
            )
        )
    elif m := _RE["partial"].search(text):
        state.verdicts.append(DelegateVerdict(m.group(1), Verdict.PARTIAL, _int(m.group(2))))
    elif m := _RE["full"].search(text):
        state.verdicts.append(DelegateVerdict(m.group(1), Verdict.FULL, 1))
    elif m := _RE["not_applied"].search(text):
        state.verdicts.append(DelegateVerdict(m.group(1), Verdict.NOT_APPLIED, 0))
    elif m := _RE["apply_failed"].match(text):
        state.verdicts.append(DelegateVerdict(m.group(1), Verdict.FAILED))
    elif m := _RE["kernels"].search(text):
        v["delegate_kernels_gpu"] = _int(m.group(1))
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
    elif m := _RE["unconsumed"].search(text):
        state.unconsumed.extend(m.group(1).split())
    elif m := _RE["param"].match(text):
        state.params.append((m.group(1).strip(), m.group(2)))
    if "Can not open OpenCL library" in text or (
        "libOpenCL" in text and re.search(r"not found|cannot open|No such file", text, re.I)
    ):
        v["opencl_missing"] = True


def _delegate_name(name: str) -> str:
    return _DELEGATE_ALIASES.get(name.strip().lower(), name.strip())


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
    explicit = [d for d in state.verdicts if _delegate_name(d.delegate) != "XNNPACK"]
    failed = [d for d in explicit if d.verdict is Verdict.FAILED]
    if failed:
        return Verdict.FAILED, _delegate_name(failed[0].delegate), None
    if explicit:
        first = explicit[0]
        return first.verdict, _delegate_name(first.delegate), first.kernels
    # Older builds print no verdict line: infer it from the replacement and unsupported ops.
    reps = [r for r in state.replacements if _delegate_name(r.delegate) != "XNNPACK"]
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
            _delegate_name(rep.delegate),
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
            DelegateVerdict(_delegate_name(d.delegate), d.verdict, d.kernels)
            for d in state.verdicts
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
