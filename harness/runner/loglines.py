"""One line of a ``benchmark_model`` log: its prefix (logcat, absl, ``INFO:``), its numbers
and the single-line patterns :mod:`harness.runner.logparse` reads. Pure, never raises."""

from __future__ import annotations

import re

from harness.runner.logmodel import RunStats

MAX_LINE = 4000  # longer lines are junk for this format; skip them (keeps regexes linear)


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


def strip_prefix(line: str) -> tuple[str | None, bool, str]:
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
NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_KV = re.compile(r"\b(count|first|curr|min|max|avg|std|p5|median|p95)=(" + NUM + ")", re.I)


def parse_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_int(text: str) -> int | None:
    if text is None or len(text) > 18:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_stats(text: str) -> RunStats | None:
    if not text.startswith("count="):
        return None
    values: dict[str, float | None] = {}
    for key, raw in _KV.findall(text):
        values.setdefault(key.lower(), parse_float(raw))
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
PATTERNS = {
    "loaded": re.compile(r"^Loaded model (.+)$"),
    "size": re.compile(r"The input model file size \(MB\):\s*(" + NUM + ")", re.I),
    "session": re.compile(r"Initialized session in\s*(" + NUM + r")\s*ms", re.I),
    "phase": re.compile(
        r"Running benchmark for at least (\d{1,12}) iterations and at least ("
        + NUM
        + r") seconds but terminate if exceeding ("
        + NUM
        + ") seconds",
        re.I,
    ),
    "timings": re.compile(r"^(Average inference timings|Inference timings) in us:\s*(.*)$"),
    "mem_delta": re.compile(
        r"(Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):"
        r"\s*init=(" + NUM + r")\s+overall=(" + NUM + ")",
        re.I,
    ),
    "peak": re.compile(
        r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*(" + NUM + ")", re.I
    ),
    "vmrss": re.compile(r"^- VmRSS\s*:\s*(" + NUM + r")\s*MB"),
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
# The columns both op-profiling tables end with: avg ms, % of the total, cumulative %, memory,
# times called.
_ROW_TAIL = (
    rf"(?P<avg>{NUM})\s+(?P<pct>{NUM})%\s+(?P<cdf>{NUM})%\s+(?P<mem>{NUM})\s+(?P<times>\d{{1,12}})"
)
PROFILE_ROW = re.compile(
    rf"^(?P<type>\S.*?)\s+(?:(?P<start>{NUM})\s+)?(?P<first>{NUM})\s+{_ROW_TAIL}"
    r"(?:\s+(?P<name>.*))?$"
)
SUMMARY_ROW = re.compile(rf"^(?P<type>\S.*?)\s+(?P<count>\d{{1,12}})\s+{_ROW_TAIL}\s*$")

DELEGATE_ALIASES = {
    "tflitegpudelegatev2": "GPU",
    "tflitegpudelegate": "GPU",
    "tflitennapidelegate": "NNAPI",
    "tflitexnnpackdelegate": "XNNPACK",
}


def delegate_name(name: str) -> str:
    return DELEGATE_ALIASES.get(name.strip().lower(), name.strip())
