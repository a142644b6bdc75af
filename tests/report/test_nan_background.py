"""A NaN background with a finite foreground is ``nan`` in bench, report, gate and diagnose
(issue 12): the cell's accuracy is computed by the bench's own comparison of a 2-channel output."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from harness.bench import compare
from harness.cell import Accuracy, Fidelity, value_signature
from harness.diagnose.matrix import classify
from tests.bench.test_compare import nan_background

from .conftest import EXAMPLE_POLICY, WRONG, sha


def _nan_background_cell(store, run_id: str) -> None:
    """Replace the (SM-G973F, softmax-fp32, gpu) cell with one whose accuracy the bench's
    comparison computed from a NaN-background softmax output."""
    probs, fg, ref_fg = nan_background(n=2, h=16, w=16, bad=7)
    mask, ref_mask = (fg > 0.5).astype(np.uint8), (ref_fg > 0.5).astype(np.uint8)
    ref = compare.vs_reference(fg, mask, ref_fg, ref_mask, probs, whole_output=probs)
    accuracy = {"n": 2, "vs_reference": ref, "vs_float": None, "vs_gt": None,
                "signature": value_signature(Fidelity.from_json(ref)).value}  # fmt: skip
    [old] = [
        c
        for c in store.cells(run_id)
        if c.variant_id == WRONG[1] and c.delegate == WRONG[2] and c.serial.endswith("40101")
    ]
    assert old.variant_sha256 == sha(WRONG[1])
    store.record_cell(replace(old, accuracy=Accuracy.from_json(accuracy)))


def test_nan_background_fails_report_gate_and_diagnose(cli, bench, store, tmp_path):
    run = bench.run()
    _nan_background_cell(store, run)
    [cell] = [c for c in store.cells(run) if c.accuracy.reference.nan]
    assert cell.accuracy.signature == "nan" and cell.accuracy.reference.iou == 1.0

    assert classify(cell, "softmax").verdict == "nan"  # diagnose

    report = cli("report", run, "--store", store.path, "--out", tmp_path / "r", "--json")
    assert report.exit_code == 0, report.stderr
    cells = json.loads((tmp_path / "r" / "report.json").read_text())["runs"][0]["cells"]
    [shown] = [c for c in cells if c["variant_id"] == WRONG[1] and c["delegate"] == WRONG[2]
               and c["serial"].endswith("40101")]  # fmt: skip
    assert shown["failing"] and shown["accuracy"]["signature"] == "nan"
    assert shown["accuracy"]["vs_reference"]["nan"] == 14
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "| SM-G973F **VIRTUAL** | softmax-fp32 | gpu | output nan vs desktop reference" in (
        markdown
    )

    gate = cli("gate", run, "--store", store.path, "--policy", EXAMPLE_POLICY, "--json")
    assert gate.exit_code == 1, gate.stdout + gate.stderr
    failed = [r for r in json.loads(gate.stdout)["results"] if not r["passed"]]
    assert len(failed) == 1 and "NaN" in json.dumps(failed[0])
