"""The host part of a cell: decode the device's outputs, compare them with the desktop
reference, store the cell and report it, on a thread per device (``_Finisher``) so the
phone's worker goes on to the next cell meanwhile."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from harness.bench import compare
from harness.bench.plan import Target
from harness.cell import Accuracy, Cell, Fidelity, Status, value_signature
from harness.store import Store, encode_arrays

if TYPE_CHECKING:
    from harness.bench.worker import Shared as _Shared


def _decode(
    raw: np.ndarray, target: Target
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Device bytes -> (foreground, mask, class probabilities or None, whole output tensor)."""
    from harness.convert.reference import decode_outputs, dequantize
    from harness.convert.specs import Semantics

    size = int(np.prod(target.output.shape[1:])) * np.dtype(target.output.dtype).itemsize
    chunk = raw[:, target.output_offset : target.output_offset + size]
    tensor = (
        np.ascontiguousarray(chunk)
        .view(target.output.dtype)
        .reshape((raw.shape[0], *target.output.shape[1:]))
    )
    fg, mask = decode_outputs(tensor, target.output)
    whole = dequantize(tensor, target.output)
    probs = whole if target.output.semantics == Semantics.CLASS_PROBABILITIES else None
    return fg, mask, probs, whole


def _accuracy(shared: _Shared, target: Target, raw: np.ndarray) -> tuple[Accuracy, bytes]:
    """The host part of a cell: device outputs decoded and compared -> (accuracy, blob)."""
    fg, mask, probs, whole = _decode(raw, target)
    ref_fg, ref_mask = shared.references[target.sha256]
    ref = compare.vs_reference(fg, mask, ref_fg, ref_mask, probs, whole)
    accuracy = {
        "n": int(len(fg)),
        "vs_reference": ref,
        "vs_float": compare.vs_float(fg, mask, shared.float_fg)
        if shared.float_fg is not None and shared.float_fg.shape == fg.shape
        else None,
        "vs_gt": compare.vs_gt(mask, shared.gt)
        if shared.gt is not None and shared.gt.shape == mask.shape
        else None,
        "signature": value_signature(Fidelity.from_json(ref)).value,
    }
    if shared.full_res is not None and accuracy["vs_gt"] is not None:
        from harness.evalset import full_resolution_iou

        accuracy["vs_gt"]["iou_full_res"] = full_resolution_iou(mask, shared.full_res)
    outputs = encode_arrays(
        {
            "device_fg": fg.astype(np.float32),
            "device_mask": mask,
            "ref_fg": ref_fg.astype(np.float32),
            "ref_mask": ref_mask,
            "device_raw": raw,
        }
    )
    return Accuracy.from_json(accuracy), outputs


class _Finisher:
    """Finishes a device's cells on a thread of its own, in order: decode and compare the
    outputs, store the cell (its own SQLite connection), report it. The device's worker goes
    on to the next cell meanwhile, so host-side work (~25 ms a cell at 128x128, more for
    larger outputs) is not added to the phone's time. ``close`` waits for what is queued."""

    def __init__(self, shared: _Shared, serial: str) -> None:
        self.shared = shared
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"finish-{serial}")
        self.thread.start()
        with shared.lock:
            shared.finishers.append(self)

    def submit(
        self, cell: Cell, target: Target, raw: np.ndarray | None = None, bulk: dict | None = None
    ) -> None:
        """Queue a cell; ``bulk``: its op-profile / sustained rows (``measure.BULK``)."""
        with self.shared.lock:
            self.shared.submitted.add(cell.key)
        self.jobs.put((cell, target, raw, bulk))

    def close(self, timeout: float | None = None) -> None:
        self.jobs.put(None)
        self.thread.join(timeout)

    def drain(self, timeout: float) -> None:
        """Wait (bounded) until every queued cell is stored: Ctrl-C keeps them too."""
        deadline = time.monotonic() + timeout
        while self.jobs.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        store = Store(self.shared.store_path)
        try:
            while (job := self.jobs.get()) is not None:
                try:
                    self._finish(store, *job)
                finally:
                    self.jobs.task_done()
            self.jobs.task_done()
        finally:
            store.close()

    def _finish(self, store: Store, cell: Cell, target: Target, raw, bulk) -> None:
        outputs = None
        if cell.measured and raw is not None:
            try:
                accuracy, outputs = _accuracy(self.shared, target, raw)
                cell = replace(cell, accuracy=accuracy)
            except Exception as exc:  # outputs the manifest cannot decode: a finding
                reason = f"outputs not decodable: {exc}"
                cell = replace(cell, status=Status.FAILED, reason=reason)
        _commit(store, self.shared, cell, outputs, bulk)


def _commit(
    store: Store, shared: _Shared, cell: Cell, outputs: bytes | None = None, bulk=None
) -> None:
    bulk = bulk or {}
    store.record_cell(cell, outputs if cell.measured else None)
    if cell.measured and bulk.get("op_profile"):
        store.record_op_profile(cell.run_id, cell.key, bulk["op_profile"])
    if cell.measured and bulk.get("sustain"):
        store.record_sustain(cell.run_id, cell.key, bulk["sustain"])
    with shared.lock:
        shared.outcome.cells.append(cell)
    shared.on_cell(cell)
