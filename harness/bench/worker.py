"""One phone's part of a bench run: stage, then measure its cells one after another.

A :class:`DeviceWorker` runs on its own thread per device (started by
:func:`harness.bench.run.run_bench`) and hands every finished cell to its finisher
(:mod:`harness.bench.finish`), which compares and stores it while the next cell runs. A
benchmark_model crash, hang or bad output is the cell's failure, never retried; a cell whose
connection was lost is measured again (at most ``CELL_ATTEMPTS`` times) once the phone is back;
a phone that does not come back fails its remaining cells ("device lost").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.bench import phone
from harness.bench.finish import _Finisher
from harness.bench.measure import BULK, CellFailed, Settings, accuracy_pass, latency_pass
from harness.bench.plan import Target
from harness.bench.stage import Staged, stage
from harness.cell import Accuracy, Cell, CellKey, Delegation, Latency, Status
from harness.devices import adb
from harness.devices.device import Device
from harness.devices.info import DeviceInfo
from harness.devices.retry import backoff_within
from harness.errors import AdbUnavailable, DeviceNotFound, DeviceUnavailable, HarnessError
from harness.runner import Delegate

if TYPE_CHECKING:
    from harness.bench.run import Outcome

# Losing the connection mid-cell is not a finding about the model: the cell is measured again
# once the phone is back, at most this many times in all.
CELL_ATTEMPTS = 3
_LOST = (DeviceUnavailable, DeviceNotFound, AdbUnavailable)


@dataclass
class Shared:
    """What every device's worker and finisher of one run share (read-only but ``outcome``,
    ``finishers`` and ``submitted``, which change under ``lock``)."""

    store_path: str
    run_id: str
    targets: list[Target]
    references: dict[str, tuple[np.ndarray, np.ndarray]]  # sha -> (fg, mask)
    float_fg: np.ndarray | None
    gt: np.ndarray | None
    eval_fingerprint: str
    inputs_by_key: dict[str, list[Path]]
    settings: Settings
    cooldown: float | None
    stop: threading.Event
    on_cell: Callable[[Cell], None]
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcome: Outcome | None = None
    finishers: list = field(default_factory=list)  # one _Finisher per device
    require_cool: float | None = None
    cool_wait: float = 600.0
    submitted: set = field(default_factory=set)  # CellKeys handed on
    full_res: object | None = None  # harness.evalset.EvalFolder for --full-res-iou


def measure_cell(
    device: Device,
    staged: Staged,
    target: Target,
    delegate: Delegate,
    cell_id: str,
    s: Settings,
) -> tuple[dict, dict, str, np.ndarray, float]:
    """The device part of a cell: (latency, delegation, log, raw outputs, device seconds)."""
    latency, delegation, log = latency_pass(device, staged, target, delegate, s)
    raw, acc_log, acc_s = accuracy_pass(device, staged, target, delegate, s, cell_id)
    device_s = latency["bm_s"] + acc_s  # time inside benchmark_model commands on the device
    latency["accuracy_bm_s"] = acc_s
    return latency, delegation, log + "\n" + acc_log, raw, device_s


def await_device(device: Device, budget: float, stop: threading.Event) -> None:
    """Wait (backoff, reconnecting) until the phone answers a shell again; DeviceUnavailable
    when it has not come back within ``budget`` seconds."""
    deadline = time.monotonic() + budget
    last = "no answer"
    for delay in [0.0, *backoff_within(budget)]:
        if stop.wait(delay):
            break
        remaining = deadline - time.monotonic()
        try:
            device.reconnect(timeout=max(1.0, min(10.0, remaining)))
            if device.shell("true", timeout=max(1.0, min(10.0, remaining))).ok:
                return
        except HarnessError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            break
    raise DeviceUnavailable(f"{device.serial} did not come back within {budget:g}s: {last}")


def cell_record(
    shared: Shared,
    entry: adb.DeviceEntry,
    target: Target,
    delegate: Delegate,
    *,
    started: float,
    status: str = "ok",
    reason: str = "",
    latency: dict | None = None,
    accuracy: dict | None = None,
    delegation: dict | None = None,
    thermal: dict | None = None,
    log: str = "",
) -> Cell:
    """The store record of one cell, finished now (``status``: ok = measured, or failed)."""
    return Cell(
        run_id=shared.run_id,
        device=entry.id,
        variant_sha256=target.sha256,
        variant_id=target.variant_id,
        delegate=delegate.value,
        status=Status(status),
        reason=reason,
        started=started,
        finished=time.time(),
        latency=Latency.from_json(latency),
        accuracy=Accuracy.from_json(accuracy),
        delegation=Delegation.from_json(delegation),
        thermal=thermal or {},
        log=log,
    )


def failed_cell(
    shared: Shared, entry: adb.DeviceEntry, target: Target, delegate: Delegate, reason: str
) -> Cell:
    return cell_record(
        shared, entry, target, delegate, started=time.time(), status="failed", reason=reason
    )


class DeviceWorker:
    """Stage on one phone, then measure its cells in order (:meth:`run`, on its own thread)."""

    def __init__(
        self,
        entry: adb.DeviceEntry,
        device: Device,
        info: DeviceInfo,
        cells: list[tuple[Target, Delegate]],
        shared: Shared,
        reconnect_wait: float,
    ) -> None:
        self.entry, self.serial = entry, entry.serial
        self.device, self.info, self.cells = device, info, cells
        self.shared, self.reconnect_wait = shared, reconnect_wait
        self.staged: Staged | None = None
        self.settings = shared.settings
        self.cooldown = 0.0
        self.lost: str | None = None  # why the phone is gone: its remaining cells fail with it
        # With no cool-down, the snapshot taken after a cell is also the one before the next:
        # nothing runs between them (saves a device round trip per cell).
        self.last_after: dict | None = None
        self.finisher: _Finisher | None = None

    def run(self) -> None:
        """Measure every cell; a bug in it must not drop cells silently: the cells not handed
        on yet are recorded as failed, with the error (the run then exits 10, not 0)."""
        try:
            self._run()
        except Exception as exc:
            if self.shared.stop.is_set():
                return
            reason = f"internal error: {type(exc).__name__}: {exc}"
            finisher = _Finisher(self.shared, self.serial)
            try:
                for target, delegate in self.cells:
                    if (
                        CellKey(self.entry.id, target.sha256, delegate.value)
                        not in self.shared.submitted
                    ):
                        cell = failed_cell(self.shared, self.entry, target, delegate, reason)
                        finisher.submit(cell, target)
            finally:
                finisher.close()

    def _run(self) -> None:
        self.finisher = _Finisher(self.shared, self.serial)
        try:
            if self._prepare():
                self._measure_cells()
        finally:
            self.finisher.close()

    def _stage_again(self) -> Staged:
        shared = self.shared
        return stage(
            self.device,
            self.info,
            shared.targets,
            shared.eval_fingerprint,
            shared.inputs_by_key,
            shared.settings.runner,
        )

    def _prepare(self) -> bool:
        """Stage (once more after waiting for the phone if it was lost while staging) and pin
        the big cores; False when that failed: then every cell of this phone fails with it."""
        try:
            try:
                self.staged = self._stage_again()
            except _LOST:
                await_device(self.device, self.reconnect_wait, self.shared.stop)
                self.staged = self._stage_again()
            affinity = phone.affinity(self.device, self.info)
            self.settings = Settings(**{**asdict(self.shared.settings), "affinity": affinity})
        except HarnessError as exc:
            for target, delegate in self.cells:
                self._submit_failed(target, delegate, f"staging failed: {exc}")
            return False
        with self.shared.lock:
            self.shared.outcome.bytes_sent += self.staged.bytes_sent
            self.shared.outcome.bytes_skipped += self.staged.bytes_skipped
        cooldown = self.shared.cooldown
        self.cooldown = cooldown if cooldown is not None else (0.0 if self.info.virtual else 3.0)
        return True

    def _submit_failed(self, target: Target, delegate: Delegate, reason: str) -> None:
        self.finisher.submit(failed_cell(self.shared, self.entry, target, delegate, reason), target)

    def _measure_cells(self) -> None:
        for n, (target, delegate) in enumerate(self.cells):
            if self.shared.stop.is_set():
                return
            if self.lost:
                self._submit_failed(target, delegate, f"device lost: {self.lost}")
                continue
            if n and self.cooldown:
                time.sleep(self.cooldown)
            started = time.time()
            record, raw = self._measure(target, delegate)
            if self.shared.stop.is_set() and record["status"] != "ok":
                return  # interrupted mid-cell: not a finding, resume measures it
            # bulk rows (op profile, sustained series) go to their own tables, not the cell
            bulk = (record.get("latency") or {}).pop(BULK, None)
            cell = cell_record(self.shared, self.entry, target, delegate, started=started, **record)
            self.finisher.submit(cell, target, raw if cell.measured else None, bulk)

    def _measure(self, target: Target, delegate: Delegate) -> tuple[dict, np.ndarray | None]:
        """One cell, measured again while the connection is lost (at most CELL_ATTEMPTS):
        (the fields of its record, its raw outputs or None)."""
        cell_id = f"{self.shared.run_id}-{target.sha256[:8]}-{delegate.value}"
        record = dict(
            latency={}, accuracy={}, delegation={}, thermal={}, log="", status="ok", reason=""
        )
        retries0 = self.device.retries
        for attempt in range(1, CELL_ATTEMPTS + 1):
            try:
                lat, dele, log, raw, thermal, dev_s = self._attempt(target, delegate, cell_id)
            except CellFailed as exc:  # a finding about the cell: recorded, not retried
                record.update(status="failed", reason=exc.reason, log=exc.log)
            except phone.NotCool as exc:
                record.update(status="failed", reason=str(exc))
            except _LOST as exc:  # the connection went: measure again once it is back
                problem: HarnessError | None = exc
                if attempt < CELL_ATTEMPTS and not self.shared.stop.is_set():
                    problem = self._recover()  # None: back and staged again
                    if problem is None:
                        continue
                self.lost = str(problem)
                record.update(status="failed", reason=f"device lost: {problem}")
            except HarnessError as exc:
                record.update(status="failed", reason=str(exc))
            else:
                lat.update(attempts=attempt, retries=self.device.retries - retries0)
                record.update(latency=lat, delegation=dele, log=log, thermal=thermal)
                with self.shared.lock:
                    self.shared.outcome.device_seconds += dev_s
                return record, raw
            return record, None
        return record, None  # not reached: the last attempt returns

    def _attempt(self, target: Target, delegate: Delegate, cell_id: str):
        """Snapshot, latency and accuracy passes, snapshot:
        (latency, delegation, log, raw outputs, thermal, device seconds)."""
        shared = self.shared
        if shared.require_cool is not None:
            before, waited = phone.wait_cool(
                self.device, shared.require_cool, shared.cool_wait, shared.stop
            )
            before["cool_wait_s"] = round(waited, 1)
        else:
            before = (
                self.last_after
                if self.last_after and not self.cooldown
                else phone.snapshot(self.device)
            )
        self.last_after = None
        lat, dele, log, raw, dev_s = measure_cell(
            self.device, self.staged, target, delegate, cell_id, self.settings
        )
        after = self.last_after = phone.snapshot(self.device)
        return lat, dele, log, raw, {"before": before, "after": after}, dev_s

    def _recover(self) -> HarnessError | None:
        """Wait for the lost phone and stage again; the error when it did not come back."""
        try:
            await_device(self.device, self.reconnect_wait, self.shared.stop)
            self.staged = self._stage_again()
        except HarnessError as again:
            return again
        return None
