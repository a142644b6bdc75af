"""Release-gate policies: a TOML file of rules, loaded and validated (pure; no store access).

```toml
[gate]
baseline = "release-1.0"        # optional: tag or run id for max_regression_pct

[[rule]]
name = "cpu matches desktop"     # optional
device = "SM-G973*"              # serial, model-code prefix or glob; string or list
variant = "*-fp32"               # glob over variant ids; string or list
delegate = ["cpu", "gpu-fp32"]   # delegate name or glob; string or list
min_iou_ref = 0.98
```

Every problem (TOML syntax, unknown key, wrong type, impossible threshold) is a one-line
:class:`~harness.errors.UsageError` that starts with ``FILE:LINE:`` (and has no square
brackets: the CLI prints errors as rich markup). tomllib reports lines
for syntax errors; for the rest the key's line is found by scanning the text
(:class:`_KeyLines`). Judging measurements against a policy is :mod:`harness.gate`'s job.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError


@dataclass(frozen=True)
class Threshold:
    """One policy key that becomes a check. ``kind``: ``max`` (measured <= limit), ``min``
    (measured >= limit) or ``require`` (a boolean that must hold when set to true)."""

    key: str
    label: str
    kind: str
    unit: str = ""
    integer: bool = False
    low: float | None = None
    low_open: bool = False  # ``low`` itself is impossible (a latency of 0 ms)
    high: float | None = None
    help: str = ""


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("max_avg_ms", "avg latency", "max", "ms", low=0, low_open=True,
              help="mean latency (latency.avg_ms)"),
    Threshold("max_p95_ms", "p95 latency", "max", "ms", low=0, low_open=True,
              help="95th percentile latency (latency.p95_ms; only newer benchmark_model prints it)"),
    Threshold("max_spread_pct", "spread", "max", "%", low=0,
              help="spread between invocations (latency.spread_pct)"),
    Threshold("max_init_ms", "init time", "max", "ms", low=0, low_open=True,
              help="interpreter and delegate initialisation (latency.init_ms)"),
    Threshold("min_iou_ref", "IoU vs reference", "min", low=0, high=1,
              help="mean mask IoU vs the desktop output of the same variant"),
    Threshold("min_iou_gt", "IoU vs ground truth", "min", low=0, high=1,
              help="mean mask IoU vs the eval set's masks"),
    Threshold("max_nan", "NaN/Inf values", "max", integer=True, low=0,
              help="NaN plus Inf values in the device output"),
    Threshold("full_delegation", "full delegation", "require",
              help="every node runs on the delegate (delegation.verdict == full)"),
    Threshold("max_regression_pct", "avg latency vs baseline", "max", "%", low=0,
              help="avg latency increase vs the same cell of the baseline run, in %; a "
              "regression only when the 95% intervals separate (else inconclusive, passes)"),
    Threshold("max_sustained_avg_ms", "sustained avg latency", "max", "ms", low=0, low_open=True,
              help="mean latency over a --sustain run (latency.sustain.avg_ms)"),
    Threshold("max_throttle_pct", "sustained latency drift", "max", "%", low=0,
              help="latency rise from the first to the last fifth of a --sustain run, in % "
              "(latency.sustain.throttle_pct)"),
)  # fmt: skip
THRESHOLD_KEYS: dict[str, Threshold] = {t.key: t for t in THRESHOLDS}
MATCH_KEYS = ("name", "device", "variant", "delegate")
RULE_KEYS = MATCH_KEYS + tuple(THRESHOLD_KEYS)
GATE_KEYS = ("baseline",)
TOP_KEYS = ("gate", "rule")


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def device_matches(pattern: str, serial: str, model: str) -> bool:
    """As ``--device``: exact serial, model-code prefix (SM-G973 matches SM-G973F), or glob
    over serial and model code."""
    norm = pattern.upper().replace("_", "-")
    if _is_glob(pattern):
        return fnmatch.fnmatchcase(serial, pattern) or fnmatch.fnmatchcase(model.upper(), norm)
    return serial == pattern or (bool(model) and model.upper().startswith(norm))


@dataclass(frozen=True)
class Rule:
    index: int  # 0-based position among the [[rule]] tables
    line: int  # line of its [[rule]] header
    name: str
    devices: tuple[str, ...] = ("*",)
    variants: tuple[str, ...] = ("*",)
    delegates: tuple[str, ...] = ("*",)
    limits: tuple[tuple[Threshold, Any], ...] = ()  # in THRESHOLDS order
    key_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def matches(self, serial: str, model: str, variant_id: str, delegate: str) -> bool:
        return (
            any(device_matches(p, serial, model) for p in self.devices)
            and any(fnmatch.fnmatchcase(variant_id, p) for p in self.variants)
            and any(fnmatch.fnmatchcase(delegate, p) for p in self.delegates)
        )

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    @property
    def selector(self) -> str:
        return (
            f"device={','.join(self.devices)} variant={','.join(self.variants)} "
            f"delegate={','.join(self.delegates)}"
        )


@dataclass(frozen=True)
class Policy:
    path: str
    rules: tuple[Rule, ...]
    baseline: str | None = None
    baseline_line: int = 0

    def needs_baseline(self) -> list[Rule]:
        return [r for r in self.rules if any(t.key == "max_regression_pct" for t, _ in r.limits)]


class _KeyLines:
    """Line numbers of tables and keys, by (table name, occurrence, key). tomllib has none."""

    _HEADER = re.compile(r"^\s*(\[\[|\[)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")

    def __init__(self, text: str) -> None:
        self.tables: dict[tuple[str, int], int] = {}
        self.keys: dict[tuple[str, int, str], int] = {}
        self.last = max(1, len(text.splitlines()))
        seen: Counter[str] = Counter()
        table: tuple[str, int] = ("", 0)
        in_string = None
        for lineno, line in enumerate(text.splitlines(), 1):
            if in_string:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            header = self._HEADER.match(line)
            if header:
                name = header.group(2).strip().strip("\"'")
                index = seen[name] if header.group(1) == "[[" else 0
                seen[name] += header.group(1) == "[["
                table = (name, index)
                self.tables.setdefault(table, lineno)
                continue
            key = self._KEY.match(line)
            if key:
                self.keys.setdefault((*table, key.group(1).strip("\"'")), lineno)
            for quotes in ('"""', "'''"):
                if line.count(quotes) % 2 == 1:
                    in_string = quotes

    def line(self, table: str, index: int, key: str | None = None) -> int:
        if key is not None and (table, index, key) in self.keys:
            return self.keys[(table, index, key)]
        if table == "" and key is not None and (key, 0) in self.tables:
            return self.tables[(key, 0)]  # a top-level key written as a [table]
        return self.tables.get((table, index), self.keys.get(("", 0, table), 1))


class _Errors:
    def __init__(self, path: str, lines: _KeyLines) -> None:
        self.path = path
        self.lines = lines

    def fail(self, line: int, message: str) -> UsageError:
        return UsageError(f"{self.path}:{line}: {message}")


def _unknown(key: str, known: tuple[str, ...], where: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
    return f"unknown key {key!r} in {where}{hint}"


def _patterns(value: Any, what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError(f"{what} must be a string or a non-empty list of strings")
    if not all(isinstance(p, str) and p.strip() for p in items):
        raise ValueError(f"{what} must be a string or a non-empty list of strings")
    return tuple(p.strip() for p in items)


def _limit(t: Threshold, value: Any) -> Any:
    """The validated limit of threshold ``t``; ValueError says what is wrong."""
    if t.kind == "require":
        if not isinstance(value, bool):
            raise ValueError(f"{t.key} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if t.integer else "a number"
        raise ValueError(f"{t.key} must be {kind}, got {type(value).__name__} {value!r}")
    if t.integer and not isinstance(value, int):
        raise ValueError(f"{t.key} must be an integer, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{t.key} must be finite, got {value!r}")
    unit = f" {t.unit}" if t.unit and t.unit != "%" else t.unit
    if t.low is not None and (value < t.low or (t.low_open and value == t.low)):
        bound = f"above {t.low:g}" if t.low_open else f"at least {t.low:g}"
        raise ValueError(f"{t.key} = {value!r}{unit} is impossible: it must be {bound}{unit}")
    if t.high is not None and value > t.high:
        raise ValueError(
            f"{t.key} = {value!r} is impossible: it must be between {t.low:g} and {t.high:g}"
        )
    return value


def _rule(raw: Any, index: int, lines: _KeyLines, err: _Errors) -> Rule:
    header = lines.line("rule", index)
    if not isinstance(raw, dict):
        raise err.fail(header, f"rule #{index + 1} must be a table")
    where = f"rule #{index + 1}"
    for key in raw:
        if key not in RULE_KEYS:
            raise err.fail(lines.line("rule", index, key), _unknown(key, RULE_KEYS, where))
    key_lines = {k: lines.line("rule", index, k) for k in raw}
    name = raw.get("name", f"rule {index + 1}")
    if not isinstance(name, str) or not name.strip():
        raise err.fail(key_lines.get("name", header), "name must be a non-empty string")
    selectors: dict[str, tuple[str, ...]] = {}
    for key in ("device", "variant", "delegate"):
        try:
            selectors[key] = _patterns(raw.get(key, "*"), key)
        except ValueError as exc:
            raise err.fail(key_lines.get(key, header), f"{where}: {exc}") from None
    _check_delegates(selectors["delegate"], raw, key_lines.get("delegate", header), err, where)
    limits = []
    for t in THRESHOLDS:
        if t.key not in raw:
            continue
        try:
            value = _limit(t, raw[t.key])
        except ValueError as exc:
            raise err.fail(key_lines[t.key], f"{where} ({name}): {exc}") from None
        if t.kind == "require" and not value:
            continue  # full_delegation = false asks for nothing
        limits.append((t, value))
    if not limits:
        keys = ", ".join(THRESHOLD_KEYS)
        raise err.fail(header, f"{where} ({name}) has no check; give at least one of: {keys}")
    return Rule(
        index=index,
        line=header,
        name=name.strip(),
        devices=selectors["device"],
        variants=selectors["variant"],
        delegates=selectors["delegate"],
        limits=tuple(limits),
        key_lines=key_lines,
    )


def _check_delegates(
    patterns: tuple[str, ...], raw: dict, line: int, err: _Errors, where: str
) -> None:
    from harness.runner.flags import Delegate, is_cpu_delegate

    known = tuple(d.value for d in Delegate)
    for pattern in patterns:
        if not _is_glob(pattern) and pattern not in known:
            raise err.fail(
                line, f"{where}: unknown delegate {pattern!r} (known: {', '.join(known)})"
            )
    cpu = [p for p in patterns if is_cpu_delegate(p)]
    if raw.get("full_delegation") is True and cpu:
        raise err.fail(
            line,
            f"{where}: full_delegation = true is impossible for {', '.join(cpu)}: "
            "the CPU runs the model without a delegate",
        )


def parse_policy(text: str, path: str | Path = "<policy>") -> Policy:
    path = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(m.group(1)) if m else max(1, len(text.splitlines()))
        detail = message[: m.start()].strip() if m else message
        column = f" (column {m.group(2)})" if m else ""
        raise UsageError(f"{path}:{line}: invalid TOML: {detail}{column}") from None
    lines = _KeyLines(text)
    err = _Errors(path, lines)
    for key in data:
        if key not in TOP_KEYS:
            raise err.fail(lines.line("", 0, key), _unknown(key, TOP_KEYS, "the policy"))
    gate = data.get("gate", {})
    if not isinstance(gate, dict):
        raise err.fail(lines.line("", 0, "gate"), "gate must be a table")
    for key in gate:
        if key not in GATE_KEYS:
            raise err.fail(lines.line("gate", 0, key), _unknown(key, GATE_KEYS, "the gate table"))
    baseline = gate.get("baseline")
    baseline_line = lines.line("gate", 0, "baseline") if "baseline" in gate else 0
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise err.fail(baseline_line, "gate.baseline must be a tag or run id (a string)")
    raw_rules = data.get("rule")
    if raw_rules is None:
        raise err.fail(1, "no rule table: a policy without rules would pass anything")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise err.fail(lines.line("", 0, "rule"), "rule must be an array of tables")
    rules = tuple(_rule(raw, i, lines, err) for i, raw in enumerate(raw_rules))
    names = Counter(r.name for r in rules)
    for rule in rules:
        if names[rule.name] > 1:
            raise err.fail(rule.line_of("name"), f"two rules are named {rule.name!r}")
    return Policy(path, rules, baseline.strip() if baseline else None, baseline_line)


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such policy file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the policy ({exc})") from None
    return parse_policy(text, path)
