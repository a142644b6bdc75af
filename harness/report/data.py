"""The report model: runs read from the store into frozen dataclasses.

This is the one model that the HTML, Markdown, JSON and JUnit renderers and the gate read.
All I/O happens in the ``load_*`` functions (read-only queries through :class:`Store`);
everything else is pure. A field that was not measured is ``None`` (never 0), so nothing
downstream can mistake a missing number for a good one.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.cell import Cell, CellKey, contains
from harness.devices.identity import DeviceId
from harness.errors import UsageError
from harness.store import Store

WORST_SAMPLES = 3  # mask overlays shown per failing cell


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class DeviceData:
    id: DeviceId
    model: str
    virtual: bool
    info: dict = field(compare=False)
    shown: str = ""  # the serial, with its adb server when another device has the same serial

    @property
    def serial(self) -> str:
        return self.id.serial

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
            "server": self.id.server,
            "model": self.model,
            "virtual": self.virtual,
            "info": self.info,
        }


@dataclass(frozen=True, eq=False)
class ReportCell:
    """A stored :class:`~harness.cell.Cell` with the device it ran on (model, virtual label):
    the report's view. Every other attribute is the cell's (``c.latency.avg_ms``,
    ``c.outcome.failing``); the judgement is the cell's one judge."""

    cell: Cell
    phone: DeviceData | None = None

    def __getattr__(self, name: str) -> Any:
        if name in ("cell", "phone") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.cell, name)

    @property
    def device_model(self) -> str:
        return self.phone.model if self.phone else self.cell.serial

    @property
    def virtual(self) -> bool:
        if self.phone is not None:
            return self.phone.virtual
        return bool(self.cell.delegation.virtual)

    @property
    def shown_serial(self) -> str:
        return self.phone.shown if self.phone and self.phone.shown else self.cell.serial

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.device_model, self.shown_serial, self.cell.variant_id, self.cell.delegate)

    @property
    def label(self) -> str:
        device = f"{self.device_model} [virtual]" if self.virtual else self.device_model
        return f"{device} {self.cell.variant_id} {self.cell.delegate}"

    def to_json(self, with_log: bool = True) -> dict:
        c = self.cell
        data = {
            "run_id": c.run_id,
            "serial": c.serial,
            "server": c.server,
            "device_model": self.device_model,
            "virtual": self.virtual,
            "variant_id": c.variant_id,
            "variant_sha256": c.variant_sha256,
            "delegate": c.delegate,
            "runner": c.latency.timed_by,
            "status": c.status.value,
            "reason": c.reason,
            "started": c.started,
            "finished": c.finished,
            "latency": c.latency.to_json(),
            "accuracy": c.accuracy.to_json(),
            "delegation": c.delegation.to_json(),
            "thermal": c.thermal,
            "has_outputs": c.has_outputs,
            "outcome": c.outcome.verdict.value,
            "failing": c.outcome.failing,
        }
        if with_log:
            data["log"] = c.log
        return data


@dataclass(frozen=True)
class PlannedCell:
    """A cell of the run's plan that has no stored result (interrupted or not reached)."""

    device: DeviceId
    device_model: str
    virtual: bool
    variant_id: str
    variant_sha256: str
    delegate: str

    @property
    def serial(self) -> str:
        return self.device.serial


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
    cells: tuple[ReportCell, ...]
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

    def device(self, device: DeviceId) -> DeviceData | None:
        return next((d for d in self.devices if d.id == device), None)

    def cells_of(self, device: DeviceId) -> list[ReportCell]:
        return [c for c in self.cells if c.phone is not None and c.phone.id == device]

    @property
    def failing(self) -> list[ReportCell]:
        return [c for c in self.cells if c.outcome.failing]

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
                    "server": m.device.server,
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


def _devices(store: Store, run_id: str) -> tuple[DeviceData, ...]:
    rows = store.devices(run_id)
    serials = Counter(d["serial"] for d in rows)
    devices = [
        DeviceData(
            d["id"],
            d["model"],
            d["virtual"],
            d["info"],
            shown=str(d["id"]) if serials[d["serial"]] > 1 else d["serial"],
        )
        for d in rows
    ]
    return tuple(sorted(devices, key=lambda d: (d.model, d.shown)))


def _phone(devices: tuple[DeviceData, ...], cell: Cell) -> DeviceData | None:
    """The device a cell ran on."""
    exact = [d for d in devices if d.id == cell.device]
    return exact[0] if exact else next((d for d in devices if d.id.matches(cell.device)), None)


def load_run(store: Store, ref: str | None) -> RunData:
    """A run by id or tag (None: the latest), with its devices, cells and unmeasured cells."""
    run_id = store.resolve_run(ref)
    run = store.run(run_id)
    devices = _devices(store, run_id)
    cells = [ReportCell(c, _phone(devices, c)) for c in store.cells(run_id)]
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
        tags=store.tags(run_id),
        devices=devices,
        cells=tuple(cells),
        missing=_missing(config, devices, {c.key for c in cells}),
    )


def _planned_devices(config: dict) -> list[DeviceId]:
    """The plan's devices: with their adb servers (schema 3 on), else serials only."""
    if ids := config.get("device_ids"):
        return [DeviceId.from_json(d) for d in ids]
    return [DeviceId.from_json(str(s)) for s in config.get("devices") or []]


def _missing(
    config: dict, devices: tuple[DeviceData, ...], measured: set[CellKey]
) -> tuple[PlannedCell, ...]:
    variants = [v for v in config.get("variants") or [] if isinstance(v, dict)]
    out = []
    for device_id in _planned_devices(config):
        device = next((d for d in devices if d.id.matches(device_id)), None)
        for variant in variants:
            for delegate in config.get("delegates") or []:
                key = CellKey(device_id, str(variant.get("sha256", "")), str(delegate))
                if contains(measured, key):
                    continue
                out.append(
                    PlannedCell(
                        device=device_id,
                        device_model=device.model if device else device_id.serial,
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
    cell: ReportCell,
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
    worst = cell.accuracy.reference.worst or ()
    order = [i for i in worst if 0 <= i < n] or sorted(range(n), key=lambda i: ious[i])
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
