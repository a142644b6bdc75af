"""Cells are finished (decoded, compared, stored) off the device's thread, in order, and a
cell whose outputs cannot be decoded is stored as failed instead of stopping the run."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

from harness.bench import finish, run
from harness.cell import Accuracy, Cell, DeviceId, Status
from harness.store import Store


def _shared(store_path, run_id, seen):
    return SimpleNamespace(
        store_path=str(store_path),
        run_id=run_id,
        lock=threading.Lock(),
        outcome=run.Outcome(run_id, "running"),
        finishers=[],
        submitted=set(),
        on_cell=seen.append,
    )


def _cell(run_id: str, n: int) -> Cell:
    return Cell(run_id, DeviceId("127.0.0.1:5037", "phone"), f"sha{n}", f"v{n}", "cpu")


def test_cells_are_stored_in_order_and_undecodable_outputs_fail(tmp_path, monkeypatch):
    def accuracy(shared, target, raw):
        time.sleep(0.05)  # slower than the submitting side: jobs queue up
        if target == "bad":
            raise ValueError("cannot reshape array of size 3")
        return Accuracy(n=len(raw)), b"blob"

    monkeypatch.setattr(finish, "_accuracy", accuracy)
    store_path = tmp_path / "r.db"
    with Store(store_path) as store:
        run_id = store.create_run({})
    seen: list[Cell] = []
    finisher = finish._Finisher(_shared(store_path, run_id, seen), "phone")
    for n, target in enumerate(["good", "bad", "good", "good"]):
        finisher.submit(_cell(run_id, n), target, np.zeros((2, 4), np.uint8))
    finisher.close()
    assert [c.variant_id for c in seen] == ["v0", "v1", "v2", "v3"]
    assert seen[1].status is Status.FAILED and "outputs not decodable" in seen[1].reason
    assert seen[0].accuracy == Accuracy(n=2)
    with Store(store_path) as store:
        stored = {c.variant_id: c for c in store.cells(run_id)}
    assert set(stored) == {"v0", "v1", "v2", "v3"} and not stored["v1"].measured
    assert stored["v0"].measured and stored["v0"].accuracy.n == 2


def test_drain_waits_for_queued_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(finish, "_accuracy", lambda *a: (time.sleep(0.1), (Accuracy(), b""))[1])
    store_path = tmp_path / "r.db"
    with Store(store_path) as store:
        run_id = store.create_run({})
    seen: list[Cell] = []
    finisher = finish._Finisher(_shared(store_path, run_id, seen), "phone")
    for n in range(3):
        finisher.submit(_cell(run_id, n), "t", np.zeros(1, np.uint8))
    finisher.drain(timeout=10)  # what Ctrl-C does before marking the run interrupted
    assert len(seen) == 3
    finisher.close()
