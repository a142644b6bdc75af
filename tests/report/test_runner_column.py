"""Every report says which runner timed each cell, and that the accuracy pass used the binary."""

from __future__ import annotations

import json
from dataclasses import replace

from harness.cell import Latency
from harness.report.assemble import load_report, render_json
from harness.report.html import render_html
from harness.report.markdown import RUNNER_NOTE, render_markdown


def test_runner_per_cell_in_markdown_html_and_json(bench, store):
    run_id = bench.run()
    cells = store.cells(run_id)
    apk_cell = cells[0]
    latency = Latency.from_json(
        {**apk_cell.latency.to_json(), "runner": "apk", "accuracy_runner": "shell"}
    )
    store.record_cell(replace(apk_cell, latency=latency))  # stored before: no runner = shell
    report = load_report(store, [run_id])
    md = render_markdown(report)
    assert "| runner |" in md and RUNNER_NOTE in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and " ms" not in line]
    runners = [line.split(" | ")[3] for line in rows if apk_cell.variant_id in line]
    assert "apk" in runners and "shell" in runners
    html = render_html(report)
    assert "<th>runner</th>" in html and "<td>apk</td>" in html and "<td>shell</td>" in html
    assert "the accuracy pass always runs the binary" in html
    data = json.loads(render_json(report))
    found = {
        (c["variant_id"], c["delegate"], c["serial"]): c["runner"]
        for run in data["runs"]
        for c in run["cells"]
    }
    assert found[(apk_cell.variant_id, apk_cell.delegate, apk_cell.serial)] == "apk"
    assert set(found.values()) == {"apk", "shell"}
