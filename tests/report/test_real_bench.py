"""A real `harness bench` run on two virtual phones: the example policy passes on it, and the
report writes all four formats from it (the store filled by the real pipeline, not by hand)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from harness.bench.run import BenchOptions, run_bench
from tests.bench.conftest import bench_model  # noqa: F401  (fixture; phones is in tests/conftest.py)

from .conftest import EXAMPLE_POLICY

pytestmark = pytest.mark.slow


def test_example_policy_passes_on_a_real_virtual_run(bench_model, phones, tmp_path, cli):  # noqa: F811
    store = tmp_path / "r.db"
    out = run_bench(
        BenchOptions(
            model=str(bench_model),
            devices=tuple(p.serial for p in phones),
            store=str(store),
            runs=3,
            warmup=1,
            repeats=2,
            images=2,
            delegates="cpu,gpu,gpu-fp32",
            variants="softmax-fp32,sigmoid-fp16",
        )
    )
    assert out.status == "complete"

    junit = tmp_path / "gate.xml"
    gate = cli("gate", "--store", store, "--policy", EXAMPLE_POLICY, "--junit", junit, "--json")
    assert gate.exit_code == 0, gate.stdout + gate.stderr
    payload = json.loads(gate.stdout)
    assert payload["passed"] and payload["virtual"] and payload["run"] == out.run_id
    assert ET.parse(junit).getroot().get("failures") == "0"

    report = cli("report", "--store", store, "--out", tmp_path / "report", "--json")
    assert report.exit_code == 0, report.stderr
    files = json.loads(report.stdout)["files"]
    assert sorted(files) == ["html", "json", "junit", "md"]
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    cells = data["runs"][0]["cells"]
    assert len(cells) == 2 * 2 * 3 and all(c["virtual"] and not c["failing"] for c in cells)
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count('<span class="badge virtual">VIRTUAL</span>') >= 5
