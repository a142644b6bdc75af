"""Output side of the virtual ``benchmark_model``: log streams, run statistics, memory.

Formats follow the official tool: ``StatWithPercentiles`` lines, C++ ``ostream`` number
formatting (``%g``), MemoryUsageMonitor-style peak sampling.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import threading
import time
from pathlib import Path


def now_us() -> int:
    return time.perf_counter_ns() // 1000


def fmt_g(value: float) -> str:
    return f"{value:g}"  # C++ ostream default formatting (precision 6)


class Out:
    """Tool lines (TFLITE_LOG) go to stdout for INFO/WARN, stderr for ERROR; runtime lines
    (delegates, XNNPACK) go to stderr."""

    def info(self, msg: str) -> None:
        print(f"INFO: {msg}", flush=True)

    def warn(self, msg: str) -> None:
        print(f"WARN: {msg}", flush=True)

    def error(self, msg: str) -> None:
        print(f"ERROR: {msg}", file=sys.stderr, flush=True)

    def runtime(self, msg: str, severity: str = "INFO") -> None:
        print(f"{severity}: {msg}", file=sys.stderr, flush=True)


class Stat:
    """tflite's StatWithPercentiles over int64 microseconds."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def add(self, v: int) -> None:
        self.values.append(v)

    @property
    def first(self) -> int:
        return self.values[0] if self.values else 0

    @property
    def avg(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    def percentile(self, p: int) -> int:
        ordered = sorted(self.values)
        return ordered[len(ordered) * p // 100] if ordered else 0

    def text(self) -> str:
        v = self.values
        if not v:
            out = "count=0"
        elif min(v) == max(v):
            out = f"count={len(v)} curr={v[-1]}" + ("(all same)" if len(v) > 1 else "")
        else:
            var = sum(x * x for x in v) / len(v) - self.avg**2
            out = (
                f"count={len(v)} first={v[0]} curr={v[-1]} min={min(v)} max={max(v)}"
                f" avg={fmt_g(self.avg)} std={int(math.sqrt(max(var, 0.0)))}"
            )
        return (
            out + f" p5={self.percentile(5)} median={self.percentile(50)} p95={self.percentile(95)}"
        )


class PeakMemory(threading.Thread):
    """Samples this process's RSS every interval (the tool's MemoryUsageMonitor)."""

    def __init__(self, interval_ms: int) -> None:
        super().__init__(daemon=True)
        self.interval = max(interval_ms, 1) / 1000.0
        self.peak_mb = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_mb = max(self.peak_mb, statm()[0])
            self._halt.wait(self.interval)

    def stop(self) -> float:
        self._halt.set()
        self.join(timeout=1.0)
        return max(self.peak_mb, statm()[0])


def statm() -> tuple[float, float]:
    """(rss MB, shared MB) from /proc/self/statm."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
        page = os.sysconf("SC_PAGE_SIZE")
        return int(fields[1]) * page / 2**20, int(fields[2]) * page / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


def maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
