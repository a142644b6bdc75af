"""The cell: one measurement of one variant on one phone with one delegate, and its judge.

A cell is keyed by :class:`CellKey` (device identity = adb server + serial, variant sha256,
delegate). Its values are typed (:class:`Latency`, :class:`Accuracy`, :class:`Delegation`):
a value that was not measured is ``None``, never 0; keys a type does not name are kept in its
``extra`` mapping and written back as they were, so fields added by another part of the
harness (or a newer one) survive a read and a write. Adding a typed field is one line.

:func:`judge` is the one judgement of a cell, used by the bench's summary, the report, the
gate and diagnose: a cell was *measured* or *failed* to be measured (with a reason), and a
measured cell's values are *correct* (``ok``, or ``partial`` delegation) or *wrong* with a
signature (``nan``, ``constant``, ``inverted``, ``sum!=1``, ``wrong``). The gate's thresholds
stay in :mod:`harness.gate`; the store's ``status`` column keeps its old values (``ok`` means
measured there), named :attr:`Status.MEASURED` / :attr:`Status.FAILED` here.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, NamedTuple

from harness.devices.identity import UNKNOWN_SERVER, DeviceId
from harness.runner.flags import Delegate

__all__ = [
    "DELEGATE_FAILED",
    "Accuracy",
    "Cell",
    "CellKey",
    "CellOutcome",
    "Delegation",
    "METRICS",
    "DeviceId",
    "Fidelity",
    "GroundTruth",
    "Latency",
    "Status",
    "Verdict",
    "contains",
    "judge",
    "value_signature",
]

WRONG_IOU = 0.9  # below this vs the desktop reference, a cell's output is "wrong"
WRONG_MAX_ABS = 0.1
SUM_TO_ONE_TOLERANCE = 0.01
DELEGATE_FAILED = "delegate failed"  # how a failed cell's reason starts when its delegate did


class CellKey(NamedTuple):
    device: DeviceId
    variant_sha256: str
    delegate: str

    def same_cell(self, other: CellKey) -> bool:
        """The same cell (:meth:`DeviceId.matches`: a device of a migrated store whose
        server was never recorded matches its serial on any server)."""
        return self[1:] == other[1:] and self.device.matches(other.device)


def contains(keys: set[CellKey], key: CellKey) -> bool:
    """``key`` is in ``keys`` (:meth:`CellKey.same_cell`)."""
    if key in keys:
        return True
    legacy = CellKey(DeviceId(UNKNOWN_SERVER, key.device.serial), *key[1:])
    return legacy in keys or (
        key.device.server == UNKNOWN_SERVER and any(key.same_cell(k) for k in keys)
    )


# -- typed JSON values -----------------------------------------------------------------------
def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _indices(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not all(_int(i) is not None for i in value):
        return None
    return tuple(value)


def _floats(value: Any) -> tuple[float, ...] | None:
    if not isinstance(value, list) or not all(_num(v) is not None for v in value):
        return None
    return tuple(value)


def _pair(value: Any) -> tuple[float, float] | None:
    floats = _floats(value)
    return floats if floats is not None and len(floats) == 2 else None  # type: ignore[return-value]


def _mapping(value: Any) -> dict | None:
    return value if isinstance(value, dict) else None


def _ops(value: Any) -> tuple[tuple[str, str], ...] | None:
    """``[[op, reason], ...]``; anything else is kept as stored (and lists no op)."""
    if not isinstance(value, list):
        return None
    pairs = [op for op in value if isinstance(op, list) and len(op) == 2]
    if len(pairs) != len(value) or not all(isinstance(x, str) for op in pairs for x in op):
        return None
    return tuple((op, why) for op, why in pairs)


class _Json:
    """Frozen values read from a cell's JSON column. A field's annotation says how it is read;
    a key whose value cannot be read (or is null) stays in ``extra`` exactly as stored."""

    extra: dict

    @classmethod
    def from_json(cls, data: Any):
        data = data if isinstance(data, dict) else {}
        typed: dict[str, Any] = {}
        extra = dict(data)
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name == "extra" or f.name not in data:
                continue
            value = _READERS[f.type](data[f.name])
            if value is not None:
                typed[f.name] = value
                del extra[f.name]
        return cls(**typed, extra=extra)

    def to_json(self) -> dict:
        out = dict(self.extra)
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "extra" or value is None:
                continue
            if isinstance(value, _Json):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[f.name] = value
        return out


@dataclass(frozen=True)
class Latency(_Json):
    """Milliseconds (docs/results-schema.md, "Cell JSON")."""

    avg_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    p5_ms: float | None = None
    median_ms: float | None = None
    p95_ms: float | None = None
    spread_pct: float | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_avg_ms: float | None = None
    peak_mem_mb: float | None = None
    runner: str | None = None
    # Confidence (harness.bench.stats): the 95% interval of avg_ms over the invocations.
    invocations: int | None = None
    ci95_ms: tuple[float, float] | None = None
    ci95_pct: float | None = None
    ci_method: str | None = None
    ci_target_pct: float | None = None
    ci_target_met: bool | None = None
    invocation_avg_ms: tuple[float, ...] | None = None
    invocation_p95_ms: tuple[float, ...] | None = None
    invocation_init_ms: tuple[float, ...] | None = None
    # Optional passes: --gpu-init, --profile-ops, --sustain (summaries; rows in their tables).
    init_cold_ms: float | None = None
    init_warm_ms: float | None = None
    kernel_cache: str | None = None
    gpu_init_error: str | None = None
    op_profile: dict | None = None
    sustain: dict | None = None
    extra: dict = field(default_factory=dict)

    def sustained(self, key: str) -> float | None:
        """A ``--sustain`` summary figure (harness.bench.sustain.summarize); None: not run, or
        cut short (its figures are not measurements of the whole duration)."""
        summary = self.sustain or {}
        value = None if summary.get("error") else summary.get(key)
        return float(value) if _num(value) is not None else None

    @property
    def timed_by(self) -> str:
        """``shell`` (benchmark_model via adb shell; every cell stored before the APK runner
        existed) or ``apk`` (the benchmark app, timings from logcat)."""
        return self.runner or "shell"


@dataclass(frozen=True)
class Fidelity(_Json):
    """The device output vs the desktop reference of the same variant."""

    iou: float | None = None
    iou_min: float | None = None
    max_abs: float | None = None
    mean_abs: float | None = None
    psnr_db: float | None = None
    nan: int | None = None
    inf: int | None = None
    sum_to_one_err: float | None = None
    constant: bool | None = None
    inverted: bool | None = None
    worst: tuple[int, ...] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def nonfinite(self) -> int | None:
        """NaN + Inf values in the device output, or None when not counted."""
        if self.nan is None and self.inf is None:
            return None
        return (self.nan or 0) + (self.inf or 0)


@dataclass(frozen=True)
class GroundTruth(_Json):
    iou: float | None = None
    pixel_acc: float | None = None
    ignored_pixels: int | None = None
    iou_full_res: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Accuracy(_Json):
    n: int | None = None
    vs_reference: Fidelity | None = None
    vs_gt: GroundTruth | None = None
    signature: str | None = None  # as the bench stored it; judge() is what it means
    extra: dict = field(default_factory=dict)

    @property
    def reference(self) -> Fidelity:
        return self.vs_reference or Fidelity()

    @property
    def gt(self) -> GroundTruth:
        return self.vs_gt or GroundTruth()


@dataclass(frozen=True)
class Delegation(_Json):
    verdict: str | None = None  # none | full | partial | not_applied | failed
    unsupported_ops: tuple[tuple[str, str], ...] | None = None
    gpu_backend: str | None = None
    cl_to_gl_fallback: bool | None = None
    replaced_nodes: int | None = None
    total_nodes: int | None = None
    virtual: bool | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ops(self) -> tuple[tuple[str, str], ...]:
        return self.unsupported_ops or ()


_READERS = {
    "float | None": _num,
    "int | None": _int,
    "str | None": _str,
    "bool | None": _bool,
    "tuple[int, ...] | None": _indices,
    "tuple[float, ...] | None": _floats,
    "tuple[float, float] | None": _pair,
    "dict | None": _mapping,
    "tuple[tuple[str, str], ...] | None": _ops,
    "Fidelity | None": lambda v: Fidelity.from_json(v) if isinstance(v, dict) else None,
    "GroundTruth | None": lambda v: GroundTruth.from_json(v) if isinstance(v, dict) else None,
}


# -- the cell --------------------------------------------------------------------------------
class Status(enum.Enum):
    """Whether the cell was measured. The values are the store's ``status`` column."""

    MEASURED = "ok"
    FAILED = "failed"


class Verdict(enum.Enum):
    """The judgement of a cell (the values are what JSON outputs and stored signatures say)."""

    CORRECT = "ok"
    PARTIAL = "partial"  # values right, graph split between the delegate and the CPU
    NAN = "nan"
    CONSTANT = "constant"
    INVERTED = "inverted"
    SUM_NOT_ONE = "sum!=1"
    WRONG = "wrong"
    DELEGATE_FAILED = "delegate-failed"
    FAILED = "failed"


_CORRECT = (Verdict.CORRECT, Verdict.PARTIAL)
_NOT_MEASURED = (Verdict.DELEGATE_FAILED, Verdict.FAILED)


@dataclass(frozen=True)
class CellOutcome:
    verdict: Verdict
    detail: str = ""  # one line: why the cell failed, or what is wrong with its values

    @property
    def measured(self) -> bool:
        return self.verdict not in _NOT_MEASURED

    @property
    def correct(self) -> bool:
        return self.verdict in _CORRECT

    @property
    def values_wrong(self) -> bool:
        return self.measured and not self.correct

    @property
    def failing(self) -> bool:
        """Not measured, or measured with wrong values."""
        return not self.correct


@dataclass(frozen=True, eq=False)
class Cell:
    """One cell of one run, as stored (one type for the bench, store, report, gate and
    diagnose; consumers that need more context compose it, e.g. the report's device)."""

    run_id: str
    device: DeviceId
    variant_sha256: str
    variant_id: str
    delegate: str
    status: Status = Status.MEASURED
    reason: str = ""  # why it failed (one line)
    started: float = 0.0
    finished: float = 0.0
    latency: Latency = field(default_factory=Latency)
    accuracy: Accuracy = field(default_factory=Accuracy)
    delegation: Delegation = field(default_factory=Delegation)
    thermal: dict = field(default_factory=dict)
    log: str = field(default="", repr=False)
    has_outputs: bool = False  # the store holds its outputs (read back, never written)

    @property
    def key(self) -> CellKey:
        return CellKey(self.device, self.variant_sha256, self.delegate)

    @property
    def serial(self) -> str:
        return self.device.serial

    @property
    def server(self) -> str:
        return self.device.server

    @property
    def measured(self) -> bool:
        return self.status is Status.MEASURED

    @cached_property
    def outcome(self) -> CellOutcome:
        return judge(self)


def value_signature(ref: Fidelity) -> Verdict:
    """What is wrong with a measured cell's values vs the desktop reference, or CORRECT
    (docs/results-schema.md, ``signature``)."""
    if ref.nonfinite:
        return Verdict.NAN
    iou = ref.iou if ref.iou is not None else 0.0
    if ref.constant and iou < WRONG_IOU:
        return Verdict.CONSTANT
    if ref.inverted:
        return Verdict.INVERTED
    if ref.sum_to_one_err is not None and ref.sum_to_one_err > SUM_TO_ONE_TOLERANCE:
        return Verdict.SUM_NOT_ONE
    if iou < WRONG_IOU or (ref.max_abs or 0.0) > WRONG_MAX_ABS:
        return Verdict.WRONG
    return Verdict.CORRECT


def _signature(accuracy: Accuracy) -> tuple[Verdict, str]:
    """The stored signature (what the bench judged when it measured), else the values'."""
    stored = accuracy.signature
    if stored is None:
        return (value_signature(accuracy.vs_reference) if accuracy.vs_reference else
                Verdict.CORRECT), ""  # fmt: skip
    try:
        return Verdict(stored), stored
    except ValueError:  # a signature this harness does not know: wrong, named as stored
        return Verdict.WRONG, stored


def judge(cell: Cell, raw_nonfinite: int | None = None) -> CellOutcome:
    """The one judgement of a cell. ``raw_nonfinite``: NaN/Inf counted over the stored raw
    outputs (diagnose counts them for cells stored before the bench counted every channel)."""
    if not cell.measured:
        detail = f"failed: {cell.reason or 'no reason recorded'}"
        if cell.reason.startswith(DELEGATE_FAILED):
            return CellOutcome(Verdict.DELEGATE_FAILED, detail)
        return CellOutcome(Verdict.FAILED, detail)
    verdict, name = _signature(cell.accuracy)
    if raw_nonfinite:
        verdict, name = Verdict.NAN, ""
    if verdict is Verdict.CORRECT:
        known = Delegate.lookup(cell.delegate)
        accelerated = known is None or not known.is_cpu
        if accelerated and cell.delegation.verdict in ("partial", "not_applied"):
            ops = ", ".join(op for op, _ in cell.delegation.ops)
            return CellOutcome(Verdict.PARTIAL, f"delegation {cell.delegation.verdict}: {ops}")
        return CellOutcome(Verdict.CORRECT)
    iou = cell.accuracy.reference.iou
    shown = "—" if iou is None else f"{iou:.3f}"
    return CellOutcome(
        verdict, f"output {name or verdict.value} vs desktop reference (IoU {shown})"
    )


# Named numbers of a cell, for the report's comparisons and charts and the gate's thresholds.
METRICS = {
    "avg_ms": lambda c: c.latency.avg_ms,
    "p95_ms": lambda c: c.latency.p95_ms,
    "spread_pct": lambda c: c.latency.spread_pct,
    "init_ms": lambda c: c.latency.init_ms,
    "iou_ref": lambda c: c.accuracy.reference.iou,
    "iou_gt": lambda c: c.accuracy.gt.iou,
    "nonfinite": lambda c: c.accuracy.reference.nonfinite,
    "sustained_avg_ms": lambda c: c.latency.sustained("avg_ms"),
    "throttle_pct": lambda c: c.latency.sustained("throttle_pct"),
}
