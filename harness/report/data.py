"""The report model: runs read from the store into frozen dataclasses.

This is the one model that the HTML, Markdown, JSON and JUnit renderers and the gate read.
All I/O happens in the ``load_*`` functions (read-only queries through :class:`Store`);
everything else is pure. A field that was not measured is ``None`` (never 0), so nothing
downstream can mistake a missing number for a good one.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import UsageError
from harness.store import CellKey, Store

WORST_SAMPLES = 3  # mask overlays shown per failing cell


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class DeviceData:
    serial: str
    model: str
    virtual: bool
    info: dict = field(compare=False)

    @property
    def soc(self) -> str:
        return str(self.info.get("soc") or "?")

    @property
    def gpu(self) -> str:
        return str(self.info.get("gpu") or "?")

    @property
    def android(self) -> str:
        release, sdk = self.info.get("android_release"), self.info.get("sdk")
        if not release and sdk is None:
            return "?"
        return f"{release or '?'} (SDK {sdk if sdk is not None else '?'})"

    @property
    def abi(self) -> str:
        return str(self.info.get("abi") or "?")

    @property
    def label(self) -> str:
        return f"{self.model} [virtual]" if self.virtual else self.model

    def to_json(self) -> dict:
        return {
            "serial": self.serial,
            "model": self.model,
            "virtual": self.virtual,
            "info": self.info,
        }


@dataclass(frozen=True, eq=False)
class CellData:
    """One measured cell (device x variant x delegate) of one run, as stored."""

    run_id: str
    serial: str
    device_model: str
    virtual: bool
    variant_id: str
    variant_sha256: str
    delegate: str
    status: str
    reason: str
    started: float
    finished: float
    latency: dict
    accuracy: dict
    delegation: dict
    thermal: dict
    log: str = field(repr=False)
    has_outputs: bool = False

    # -- identity ------------------------------------------------------------------------------
    @property
    def key(self) -> CellKey:
        return CellKey(self.serial, self.variant_sha256, self.delegate)

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.device_model, self.serial, self.variant_id, self.delegate)

    @property
    def label(self) -> str:
        device = f"{self.device_model} [virtual]" if self.virtual else self.device_model
        return f"{device} {self.variant_id} {self.delegate}"

    # -- latency -------------------------------------------------------------------------------
    def _lat(self, key: str) -> float | None:
        return _num(_dict(self.latency).get(key))

    @property
    def avg_ms(self) -> float | None:
        return self._lat("avg_ms")

    @property
    def std_ms(self) -> float | None:
        return self._lat("std_ms")

    @property
    def min_ms(self) -> float | None:
        return self._lat("min_ms")

    @property
    def max_ms(self) -> float | None:
        return self._lat("max_ms")

    @property
    def p95_ms(self) -> float | None:
        return self._lat("p95_ms")

    @property
    def spread_pct(self) -> float | None:
        return self._lat("spread_pct")

    @property
    def init_ms(self) -> float | None:
        return self._lat("init_ms")

    @property
    def peak_mem_mb(self) -> float | None:
        return self._lat("peak_mem_mb")

    @property
    def runner(self) -> str:
        """What timed the cell: ``shell`` (benchmark_model via adb shell; every cell stored
        before the APK runner existed) or ``apk`` (the benchmark app, timings from logcat)."""
        return str(_dict(self.latency).get("runner") or "shell")

    # -- accuracy ------------------------------------------------------------------------------
    @property
    def vs_reference(self) -> dict:
        return _dict(_dict(self.accuracy).get("vs_reference"))

    @property
    def iou_ref(self) -> float | None:
        return _num(self.vs_reference.get("iou"))

    @property
    def iou_ref_min(self) -> float | None:
        return _num(self.vs_reference.get("iou_min"))

    @property
    def iou_gt(self) -> float | None:
        return _num(_dict(_dict(self.accuracy).get("vs_gt")).get("iou"))

    @property
    def nonfinite(self) -> int | None:
        """NaN + Inf values in the device output, or None when not measured."""
        ref = self.vs_reference
        nan, inf = _num(ref.get("nan")), _num(ref.get("inf"))
        if nan is None and inf is None:
            return None
        return int((nan or 0) + (inf or 0))

    @property
    def signature(self) -> str | None:
        sig = _dict(self.accuracy).get("signature")
        return str(sig) if sig else None

    @property
    def worst(self) -> list[int]:
        worst = self.vs_reference.get("worst")
        return [int(i) for i in worst if isinstance(i, int)] if isinstance(worst, list) else []

    # -- delegation ----------------------------------------------------------------------------
    @property
    def verdict(self) -> str | None:
        verdict = _dict(self.delegation).get("verdict")
        return str(verdict) if verdict else None

    @property
    def unsupported_ops(self) -> list[tuple[str, str]]:
        ops = _dict(self.delegation).get("unsupported_ops") or []
        out = []
        for op in ops:
            if isinstance(op, list | tuple) and op:
                out.append((str(op[0]), str(op[1]) if len(op) > 1 else ""))
            elif isinstance(op, str):
                out.append((op, ""))
        return out

    # -- judgement-free summaries --------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failing(self) -> bool:
        """The cell failed, or its output differs from the desktop reference."""
        return not self.ok or self.signature not in (None, "ok")

    @property
    def problem(self) -> str:
        if not self.ok:
            return f"{self.status}: {self.reason or 'no reason recorded'}"
        if self.signature not in (None, "ok"):
            return f"output {self.signature} vs desktop reference (IoU {_fmt(self.iou_ref)})"
        return ""

    def to_json(self, with_log: bool = True) -> dict:
        data = {
            "run_id": self.run_id,
            "serial": self.serial,
            "device_model": self.device_model,
            "virtual": self.virtual,
            "variant_id": self.variant_id,
            "variant_sha256": self.variant_sha256,
            "delegate": self.delegate,
            "runner": self.runner,
            "status": self.status,
            "reason": self.reason,
            "started": self.started,
            "finished": self.finished,
            "latency": self.latency,
            "accuracy": self.accuracy,
            "delegation": self.delegation,
            "thermal": self.thermal,
            "has_outputs": self.has_outputs,
            "failing": self.failing,
        }
        if with_log:
            data["log"] = self.log
        return data


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class PlannedCell:
    """A cell of the run's plan that has no stored result (interrupted or not reached)."""

    serial: str
    device_model: str
    virtual: bool
    variant_id: str
    variant_sha256: str
    delegate: str


@dataclass(frozen=True, eq=False)
class RunData:
    id: str
    created: float
    finished: float | None
    status: str
    host: str
    harness_version: str
    config: dict
    tags: tuple[str, ...]
    devices: tuple[DeviceData, ...]
    cells: tuple[CellData, ...]
    missing: tuple[PlannedCell, ...] = ()

    @property
    def model(self) -> str:
        return str(self.config.get("model") or "?")

    @property
    def any_virtual(self) -> bool:
        return any(d.virtual for d in self.devices) or any(c.virtual for c in self.cells)

    @property
    def evalset(self) -> dict:
        return _dict(self.config.get("eval_set"))

    @property
    def warnings(self) -> list[str]:
        """I/O spec warnings recorded by the bench (e.g. an unknown input normalization)."""
        return [str(w) for w in self.config.get("warnings") or []]

    @property
    def normalization_sources(self) -> dict[str, str]:
        """Variant id -> where its input normalization came from (manifest, metadata, ...)."""
        out = {}
        for v in self.config.get("variants") or []:
            io = _dict(v.get("io")) if isinstance(v, dict) else {}
            if io.get("normalization_source"):
                out[str(v.get("id"))] = str(io["normalization_source"])
        return out

    @property
    def variant_ids(self) -> list[str]:
        return sorted({c.variant_id for c in self.cells} | {m.variant_id for m in self.missing})

    @property
    def delegates(self) -> list[str]:
        return sorted({c.delegate for c in self.cells} | {m.delegate for m in self.missing})

    def device(self, serial: str) -> DeviceData | None:
        return next((d for d in self.devices if d.serial == serial), None)

    def cells_of(self, serial: str) -> list[CellData]:
        return [c for c in self.cells if c.serial == serial]

    @property
    def failing(self) -> list[CellData]:
        return [c for c in self.cells if c.failing]

    @property
    def label(self) -> str:
        return f"{self.id} ({', '.join(self.tags)})" if self.tags else self.id

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "created": self.created,
            "finished": self.finished,
            "status": self.status,
            "host": self.host,
            "harness_version": self.harness_version,
            "config": self.config,
            "tags": list(self.tags),
            "virtual": self.any_virtual,
            "devices": [d.to_json() for d in self.devices],
            "cells": [c.to_json() for c in self.cells],
            "missing": [
                {
                    "serial": m.serial,
                    "device_model": m.device_model,
                    "virtual": m.virtual,
                    "variant_id": m.variant_id,
                    "variant_sha256": m.variant_sha256,
                    "delegate": m.delegate,
                }
                for m in self.missing
            ],
        }


@dataclass(frozen=True)
class Sample:
    """One eval input of a failing cell, for the mask overlays (not part of the JSON)."""

    index: int
    iou: float | None
    image: np.ndarray | None = field(repr=False, compare=False)  # uint8 [H,W,3]
    ref_mask: np.ndarray | None = field(repr=False, compare=False)  # bool [h,w]
    device_mask: np.ndarray | None = field(repr=False, compare=False)  # bool [h,w]
    device_fg: np.ndarray | None = field(repr=False, compare=False)  # float [h,w]


def _tags(store: Store, run_id: str) -> tuple[str, ...]:
    rows = store.db.execute("SELECT name FROM tags WHERE run_id = ? ORDER BY name", (run_id,))
    return tuple(r[0] for r in rows)


def _has_outputs(store: Store, run_id: str) -> set[CellKey]:
    rows = store.db.execute(
        "SELECT serial, variant_sha256, delegate FROM cells WHERE run_id = ? "
        "AND outputs IS NOT NULL",
        (run_id,),
    )
    return {CellKey(*r) for r in rows}


def load_run(store: Store, ref: str | None) -> RunData:
    """A run by id or tag (None: the latest), with its devices, cells and unmeasured cells."""
    run_id = store.resolve_run(ref)
    run = store.run(run_id)
    devices = tuple(
        DeviceData(d["serial"], d["model"], d["virtual"], d["info"]) for d in store.devices(run_id)
    )
    by_serial = {d.serial: d for d in devices}
    with_outputs = _has_outputs(store, run_id)
    cells = []
    for rec in store.cells(run_id):
        device = by_serial.get(rec.serial)
        virtual = bool(device.virtual) if device else bool(_dict(rec.delegation).get("virtual"))
        cells.append(
            CellData(
                run_id=rec.run_id,
                serial=rec.serial,
                device_model=device.model if device else rec.serial,
                virtual=virtual,
                variant_id=rec.variant_id,
                variant_sha256=rec.variant_sha256,
                delegate=rec.delegate,
                status=rec.status,
                reason=rec.reason,
                started=rec.started,
                finished=rec.finished,
                latency=_dict(rec.latency),
                accuracy=_dict(rec.accuracy),
                delegation=_dict(rec.delegation),
                thermal=_dict(rec.thermal),
                log=rec.log,
                has_outputs=rec.key in with_outputs,
            )
        )
    cells.sort(key=lambda c: c.sort_key)
    config = _dict(run["config"])
    return RunData(
        id=run["id"],
        created=run["created"],
        finished=run["finished"],
        status=run["status"],
        host=run["host"],
        harness_version=run["harness_version"],
        config=config,
        tags=_tags(store, run_id),
        devices=tuple(sorted(devices, key=lambda d: (d.model, d.serial))),
        cells=tuple(cells),
        missing=_missing(config, by_serial, {c.key for c in cells}),
    )


def _missing(
    config: dict, devices: dict[str, DeviceData], measured: set[CellKey]
) -> tuple[PlannedCell, ...]:
    variants = [v for v in config.get("variants") or [] if isinstance(v, dict)]
    out = []
    for serial in config.get("devices") or []:
        device = devices.get(serial)
        for variant in variants:
            for delegate in config.get("delegates") or []:
                key = CellKey(str(serial), str(variant.get("sha256", "")), str(delegate))
                if key in measured:
                    continue
                out.append(
                    PlannedCell(
                        serial=str(serial),
                        device_model=device.model if device else str(serial),
                        virtual=bool(device and device.virtual),
                        variant_id=str(variant.get("id", "?")),
                        variant_sha256=key.variant_sha256,
                        delegate=str(delegate),
                    )
                )
    out.sort(key=lambda m: (m.device_model, m.serial, m.variant_id, m.delegate))
    return tuple(out)


# -- mask overlays of failing cells ------------------------------------------------------------
def _per_sample_iou(a: np.ndarray, b: np.ndarray) -> list[float]:
    out = []
    for x, y in zip(a, b, strict=False):
        union = np.logical_or(x, y).sum()
        out.append(1.0 if union == 0 else float(np.logical_and(x, y).sum() / union))
    return out


def load_samples(
    store: Store,
    run: RunData,
    cell: CellData,
    images: np.ndarray | None,
    limit: int = WORST_SAMPLES,
) -> list[Sample]:
    """The worst inputs of a cell (``accuracy.vs_reference.worst``, else the lowest IoU), with
    the eval set ``images`` (from :func:`load_evalset_images`; None draws masks on grey)."""
    blob = store.outputs(run.id, cell.key)
    if not blob:
        return []
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: np.array(npz[k]) for k in npz.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"run {run.id}: outputs of {cell.label} are not a readable npz") from exc
    device_fg = arrays.get("device_fg")
    device_mask = arrays.get("device_mask")
    ref_mask = arrays.get("ref_mask")
    if device_mask is None and device_fg is not None:
        device_mask = np.nan_to_num(device_fg, nan=0.0) > 0.5
    if ref_mask is None and arrays.get("ref_fg") is not None:
        ref_mask = arrays["ref_fg"] > 0.5
    if device_mask is None or ref_mask is None or device_mask.ndim != 3:
        return []
    device_mask, ref_mask = device_mask.astype(bool), ref_mask.astype(bool)
    ious = _per_sample_iou(device_mask, ref_mask)
    n = len(ious)
    order = [i for i in cell.worst if 0 <= i < n] or sorted(range(n), key=lambda i: ious[i])
    samples = []
    for i in order[:limit]:
        image = images[i] if images is not None and i < len(images) else None
        fg = device_fg[i] if device_fg is not None and i < len(device_fg) else None
        samples.append(Sample(i, ious[i], image, ref_mask[i], device_mask[i], fg))
    return samples


def load_evalset_images(store: Store, run: RunData) -> np.ndarray | None:
    """The run's eval set images (uint8 [N,H,W,C]), or None when the store does not hold it."""
    fingerprint = str(run.evalset.get("fingerprint") or "")
    found = store.evalset(fingerprint) if fingerprint else None
    return found[1] if found else None
