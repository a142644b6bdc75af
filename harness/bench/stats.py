"""How sure a latency is: a confidence interval of the mean, when to stop measuring, and the
regression decision that uses the intervals. Pure (no I/O, no numpy).

The unit of measurement is one *invocation* of ``benchmark_model`` (one process: init,
warmup, ``--num_runs`` timed runs). Runs inside one invocation share its process, caches and
clock state, so they are not independent; invocations are the repeated, independent
measurements. The interval is **Student's t over the per-invocation means** (95%, two-sided):
``mean ± t(0.975, n-1) · s / √n`` with ``s`` the sample standard deviation of the ``n``
invocation means. It needs at least two invocations; with two it is wide (t = 12.7) on
purpose: two numbers say little about the noise.

A latency change is a *regression* only when it exceeds the threshold **and** the intervals
separate (the new interval lies wholly above the baseline's); when it exceeds the threshold but
the intervals overlap, it is *inconclusive* (measure more: ``--target-ci``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CI_METHOD = "t95 over invocation means"
MAX_INVOCATIONS = 200  # --target-ci never runs more invocations than this per cell

# Two-sided 95% Student t quantiles t(0.975, df) for df = 1..30 (standard tables).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t975(df: int) -> float:
    """t(0.975, df): the table up to 30, then the Cornish-Fisher expansion (error < 1e-3)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Interval:
    """A 95% confidence interval of a mean latency (ms) from ``n`` invocation means."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_pct(self) -> float:
        """Half-width as % of the mean (the figure ``--target-ci`` compares with)."""
        return (self.high - self.mean) / self.mean * 100.0 if self.mean > 0 else math.inf

    def to_json(self) -> list[float]:
        """``[low, high]``; a lower bound below 0 (few, noisy invocations) is stored as 0: a
        latency is positive."""
        return [max(self.low, 0.0), self.high]


def interval(values: Sequence[float]) -> Interval | None:
    """The t interval of the mean of ``values`` (per-invocation means); None for fewer than
    two values or any non-finite one."""
    xs = [float(v) for v in values if v is not None]
    if len(xs) < 2 or len(xs) != len(values) or not all(math.isfinite(x) for x in xs):
        return None
    mean = statistics.fmean(xs)
    half = t975(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return Interval(mean, mean - half, mean + half, len(xs))


def latency_interval(latency: dict, key: str = "avg_ms") -> Interval | None:
    """The interval of a stored cell's metric (``avg_ms``, ``p95_ms``, ``init_ms``) from its
    per-invocation values (``invocation_avg_ms`` etc.); cells stored before intervals existed
    have ``invocation_avg_ms`` too, so their avg interval is computed the same way."""
    values = latency.get("invocation_" + key) if isinstance(latency, dict) else None
    if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
        return None
    return interval(values)


def ci_fields(avgs: Sequence[float], target_pct: float | None, met: bool | None) -> dict:
    """The latency-dict keys a cell stores about its interval."""
    ci = interval(avgs)
    return {
        "invocations": len(avgs),
        "ci_method": CI_METHOD,
        "ci95_ms": ci.to_json() if ci else None,
        "ci95_pct": ci.half_pct if ci else None,
        "ci_target_pct": target_pct,
        "ci_target_met": met,
    }


def enough(avgs: Sequence[float], minimum: int, target_pct: float | None) -> bool:
    """The stopping rule: at least ``minimum`` invocations and, with a target, an interval
    whose half-width is at most ``target_pct`` % of the mean."""
    if len(avgs) < minimum:
        return False
    if target_pct is None:
        return True
    ci = interval(avgs)
    return ci is not None and ci.half_pct <= target_pct


# -- the regression decision -------------------------------------------------------------------
REGRESSION = "regression"
IMPROVEMENT = "improvement"
INCONCLUSIVE = "inconclusive"
SAME = "ok"


@dataclass(frozen=True)
class Decision:
    """A latency change judged with intervals. ``verdict``: ``regression`` (beyond the
    threshold and the intervals separate), ``inconclusive`` (beyond the threshold, intervals
    overlap or missing), ``improvement`` (faster beyond the threshold, intervals separate),
    ``ok`` (within the threshold)."""

    verdict: str
    change_pct: float | None
    base: Interval | None
    new: Interval | None
    why: str

    @property
    def regressed(self) -> bool:
        return self.verdict == REGRESSION

    @property
    def inconclusive(self) -> bool:
        return self.verdict == INCONCLUSIVE


def decide(
    base_mean: float | None,
    new_mean: float | None,
    base: Interval | None,
    new: Interval | None,
    threshold_pct: float,
) -> Decision:
    """Judge ``new`` against ``base``: see :class:`Decision`."""
    if base_mean is None or new_mean is None or base_mean <= 0:
        return Decision(INCONCLUSIVE, None, base, new, "not measured")
    pct = (new_mean - base_mean) / base_mean * 100.0
    if abs(pct) <= threshold_pct:
        return Decision(SAME, pct, base, new, f"{pct:+.1f}% within ±{threshold_pct:g}%")
    if base is None or new is None:
        few = "baseline" if base is None else "this run"
        why = f"{pct:+.1f}% but {few} has no interval (fewer than 2 invocations)"
        return Decision(INCONCLUSIVE, pct, base, new, why)
    if pct > 0 and new.low > base.high:
        why = f"{pct:+.1f}%; intervals separate ({_iv(base)} -> {_iv(new)} ms)"
        return Decision(REGRESSION, pct, base, new, why)
    if pct < 0 and new.high < base.low:
        why = f"{pct:+.1f}%; intervals separate ({_iv(base)} -> {_iv(new)} ms)"
        return Decision(IMPROVEMENT, pct, base, new, why)
    why = f"{pct:+.1f}% but the 95% intervals overlap ({_iv(base)} vs {_iv(new)} ms)"
    return Decision(INCONCLUSIVE, pct, base, new, why)


def decide_cells(base_latency: dict, new_latency: dict, threshold_pct: float, key="avg_ms"):
    """:func:`decide` on two stored latency dicts."""

    def num(d: dict) -> float | None:
        v = d.get(key) if isinstance(d, dict) else None
        return float(v) if isinstance(v, int | float) and math.isfinite(v) else None

    return decide(
        num(base_latency),
        num(new_latency),
        latency_interval(base_latency, key),
        latency_interval(new_latency, key),
        threshold_pct,
    )


def _iv(ci: Interval) -> str:
    return f"[{ci.low:.3f}, {ci.high:.3f}]"
