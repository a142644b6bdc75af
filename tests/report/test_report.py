"""`harness report` and `harness tag`: files, contents, escaping, determinism, regressions."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from harness.cell import Verdict
from harness.errors import UsageError
from harness.report import formatting as fmt
from harness.report.assemble import load_report, render_json
from harness.report.commands import parse_formats
from harness.report.data import load_run
from harness.report.html import render_html
from harness.report.junit import render_report_junit
from harness.report.markdown import render_markdown
from harness.report.overlays import BLUE, MAGENTA, RED, overlay_panels

from .conftest import WRONG, sha


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    png = np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8)
    image = cv2.imdecode(png, cv2.IMREAD_COLOR)
    assert image is not None and image.size
    return image


def test_report_writes_all_four_formats(cli, bench, store, tmp_path):
    bench.run(tag="release-1.0")
    run = bench.run(wrong=WRONG)
    out = tmp_path / "rep"
    result = cli("report", run, "--baseline", "release-1.0", "--store", store.path, "--out", out,
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["runs"] == [run] and summary["virtual"] is True
    assert summary["failing_cells"] == 1 and summary["regressions"] == 1
    names = {"report.html", "report.md", "report.json", "report-junit.xml"}
    assert {p.name for p in out.iterdir()} == names

    data = json.loads((out / "report.json").read_text())
    assert data["schema"] == 1 and data["virtual"] is True
    (run_json,) = data["runs"]
    assert len(run_json["cells"]) == 18 and len(run_json["devices"]) == 2
    assert all(d["virtual"] for d in run_json["devices"])
    wrong = [c for c in run_json["cells"] if c["failing"]]
    assert [(c["device_model"], c["variant_id"], c["delegate"]) for c in wrong] == [WRONG]
    assert wrong[0]["accuracy"]["vs_reference"]["nan"] == 256
    assert data["baseline"]["tags"] == ["release-1.0"]

    junit = ET.parse(out / "report-junit.xml").getroot()
    assert junit.get("tests") == "36" and junit.get("failures") == "2"  # wrong cell + regression

    html = (out / "report.html").read_text()
    assert "softmax-fp32" in html and "VIRTUAL" in html


def test_report_format_and_default_run(cli, bench, store, tmp_path):
    bench.run()
    latest = bench.run()
    out = tmp_path / "md-only"
    result = cli("report", "--store", store.path, "--out", out, "--format", "md")
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in out.iterdir()] == ["report.md"]
    assert latest in (out / "report.md").read_text()
    assert "VIRTUAL" in result.stdout
    bad = cli("report", "--store", store.path, "--out", out, "--format", "pdf")
    assert bad.exit_code == 2 and "unknown report format 'pdf'" in bad.stderr
    missing = cli("report", "nope", "--store", store.path, "--out", out)
    assert missing.exit_code == 2 and "no run or tag 'nope'" in missing.stderr


def test_parse_formats():
    assert parse_formats("junit, markdown,html") == ["html", "md", "junit"]
    with pytest.raises(UsageError):
        parse_formats(" , ")


def test_html_is_self_contained_and_complete(bench, store):
    run_id = bench.run(wrong=WRONG)
    html = render_html(load_report(store, [run_id]))
    parsed = _parse(html)
    tags = [t for t, _ in parsed.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    assert not re.search(r"(src|href)=\"(?!data:|#)", html), "external reference in the report"
    assert "http://" not in html and "https://" not in html and "url(" not in html
    images = [a["src"] for t, a in parsed.tags if t == "img"]
    # 2 latency charts, 2 heatmaps (vs reference, vs ground truth), 3 worst inputs x 4 panels
    assert len(images) == 2 + 2 + 3 * 4
    for uri in images:
        _decode(uri)
    tables = [a.get("class") for t, a in parsed.tags if t == "table"]
    assert tables.count("results") == 2 and "devices" in tables and "delegation" in tables
    assert "overlays" in tables
    # every device row and results heading carries the VIRTUAL badge, and the header does
    assert html.count('<span class="badge virtual">VIRTUAL</span>') >= 2 + 2 + 1
    assert 'id="virtual-banner"' in html
    assert "QUANTIZE" in html and "Operation is not supported." in html  # unsupported ops


def test_real_run_has_no_virtual_marks(bench, store):
    run_id = bench.run(virtual=False)
    report = load_report(store, [run_id])
    assert not report.any_virtual
    assert "VIRTUAL" not in render_html(report) and "VIRTUAL" not in render_markdown(report)


def test_strings_from_devices_are_escaped(bench, store):
    evil = '<script>alert("x")</script>|`*$x^{2$'  # HTML, Markdown and matplotlib mathtext
    run_id = bench.run(models={"SM-G973F": evil})
    report = load_report(store, [run_id])
    html = render_html(report)
    assert "<script>" not in html and "&lt;script&gt;" in html
    md = render_markdown(report)
    assert "<script>" not in md and "&lt;script&gt;alert" in md
    assert "\\|" in md  # a pipe cannot break the Markdown tables
    ET.fromstring(render_report_junit(report))  # still well-formed XML


def test_rendering_is_deterministic(bench, store):
    run_id = bench.run(wrong=WRONG)
    first = load_report(store, [run_id])
    again = load_report(store, [run_id])
    assert render_html(first) == render_html(again)
    assert render_markdown(first) == render_markdown(again)
    assert render_json(first) == render_json(again)
    assert render_report_junit(first) == render_report_junit(again)


def test_regression_20_percent_slower_is_flagged(bench, store):
    bench.run(tag="release-1.0")
    slower = bench.run(scale=1.2)
    report = load_report(store, [slower], baseline="release-1.0")
    (comparison,) = report.comparisons
    assert len(comparison.cells) == 18 and len(comparison.regressions) == 18
    for cell in comparison.cells:
        avg = cell.delta("avg_ms")
        assert avg.pct == pytest.approx(20.0, abs=0.1) and avg.regressed
        assert not cell.delta("iou_ref").regressed
        assert cell.delta("init_ms").pct == pytest.approx(0.0)
    assert "+20.0%" in render_markdown(report)
    assert render_html(report).count("+20.0%") >= 18
    data = json.loads(render_json(report))
    pcts = [d["pct"] for c in data["comparisons"][0]["cells"] for d in c["deltas"]
            if d["metric"] == "avg_ms"]  # fmt: skip
    assert len(pcts) == 18 and all(p == pytest.approx(20.0, abs=0.1) for p in pcts)


def test_small_changes_and_faster_runs_are_not_regressions(bench, store):
    base = bench.run()
    same = bench.run(scale=1.05)
    faster = bench.run(scale=0.7)
    report = load_report(store, [same, faster], baseline=base)
    same_cmp, faster_cmp = report.comparisons
    assert not same_cmp.regressions and not same_cmp.improvements
    assert not faster_cmp.regressions and len(faster_cmp.improvements) == 18
    assert faster_cmp.cells[0].delta("avg_ms").pct == pytest.approx(-30.0, abs=0.1)
    assert "No regression" in render_markdown(report)


def test_wrong_output_is_a_regression_even_at_equal_speed(bench, store):
    base = bench.run()
    run = bench.run(wrong=WRONG)
    (comparison,) = load_report(store, [run], baseline=base).comparisons
    (regressed,) = comparison.regressions
    assert regressed.cell.label == "SM-G973F [virtual] softmax-fp32 gpu"
    assert regressed.status_change == "ok → nan"
    assert regressed.delta("iou_ref").regressed


def test_cells_are_matched_by_model_when_virtual_serials_change(bench, store):
    base = bench.run()
    moved = bench.run(port_offset=100, scale=1.2)
    (comparison,) = load_report(store, [moved], baseline=base).comparisons
    assert len(comparison.cells) == 18 and not comparison.only_in_run
    assert {(c.cell.serial, c.base.serial) for c in comparison.cells} == {
        ("127.0.0.1:40201", "127.0.0.1:40101"),
        ("127.0.0.1:40202", "127.0.0.1:40102"),
    }
    # two phones of one model with new serials cannot be told apart: not compared
    twins = bench.run(port_offset=200, models={"SM-G973U": "SM-G973F"})
    (comparison,) = load_report(store, [twins], baseline=base).comparisons
    assert not comparison.cells and len(comparison.only_in_run) == 18
    assert len(comparison.only_in_baseline) == 18


def test_missing_and_failed_cells_are_reported(bench, store):
    run_id = bench.run(
        failed=("SM-G973U", "softmax-int8", "gpu"),
        unmeasured=(("SM-G973F", "sigmoid-fp16", "cpu"),),
        status="interrupted",
    )
    report = load_report(store, [run_id])
    run = report.runs[0]
    assert [(m.device_model, m.variant_id, m.delegate) for m in run.missing] == [
        ("SM-G973F", "sigmoid-fp16", "cpu")
    ]
    html = render_html(report)
    assert "Planned but not measured (1)" in html and "SIGSEGV" in html
    md = render_markdown(report)
    assert "1 failed" in md and "1 not measured" in md
    root = ET.fromstring(render_report_junit(report))
    kinds = sorted(f.get("type") for f in root.iter("failure"))
    assert kinds == ["cell-failed", "missing"]


def test_overlay_panels_show_the_difference(bench, store):
    run_id = bench.run(wrong=WRONG)
    report = load_report(store, [run_id])
    (cell,) = report.runs[0].failing
    samples = report.samples_of(cell)
    assert [s.index for s in samples] == list(cell.accuracy.reference.worst) and len(samples) == 3
    panels = overlay_panels(samples[0])
    assert list(panels) == ["input", "desktop", "device", "difference"]
    diff = cv2.cvtColor(_decode(panels["difference"]), cv2.COLOR_BGR2RGB)
    assert diff.shape[:2] == (144, 144)
    colours = {tuple(c) for c in diff.reshape(-1, 3)}
    assert tuple(RED) in colours  # foreground only on the device (right half)
    assert tuple(BLUE) in colours  # the person's left half, missed by the device
    assert tuple(MAGENTA) in colours  # the NaN corner
    assert tuple(diff[0, 0]) == tuple(MAGENTA) and tuple(diff[70, 140]) == tuple(RED)


def test_load_run_fields_follow_the_schema(bench, store):
    run = load_run(store, bench.run(tag="v1"))
    assert run.tags == ("v1",) and run.status == "complete" and run.model == "portrait-tiny"
    cell = next(c for c in run.cells if c.variant_id == "softmax-int8" and c.delegate == "gpu")
    assert cell.variant_sha256 == sha("softmax-int8") and cell.has_outputs
    assert cell.delegation.verdict == "partial" and cell.delegation.ops == (
        ("QUANTIZE", "Operation is not supported."),
    )
    assert cell.outcome.verdict is Verdict.PARTIAL and not cell.outcome.failing
    assert cell.latency.p95_ms is None and cell.latency.avg_ms == pytest.approx(9.0)
    assert cell.latency.spread_pct == pytest.approx(2.0)
    assert cell.accuracy.reference.nonfinite == 0


def test_tag_command(cli, bench, store):
    first, second = bench.run(), bench.run()
    assert cli("tag", first, "release-1.0", "--store", store.path).exit_code == 0
    assert store.resolve_run("release-1.0") == first
    moved = cli("tag", second, "release-1.0", "--store", store.path)
    assert moved.exit_code == 0 and f"moved from {first}" in moved.stdout
    assert store.resolve_run("release-1.0") == second
    assert cli("tag", "release-1.0", "latest-good", "--store", store.path).exit_code == 0
    assert store.resolve_run("latest-good") == second
    for bad_name, expected in ((first, "is a run id"), ("has space", "bad tag name")):
        result = cli("tag", second, bad_name, "--store", store.path)
        assert result.exit_code == 2 and expected in result.stderr
    assert cli("tag", "nope", "x", "--store", store.path).exit_code == 2


@pytest.mark.parametrize(
    ("func", "value", "text"),
    [
        (fmt.ms, 0.4123, "0.412"),
        (fmt.ms, 2.914, "2.91"),
        (fmt.ms, 38.44, "38.4"),
        (fmt.ms, 1204.4, "1,204"),
        (fmt.ms, None, "—"),
        (fmt.ms, float("nan"), "—"),
        (fmt.iou, 0.98765, "0.988"),
        (fmt.iou, 0.99972, "0.9997"),
        (fmt.iou, 0.999999, ">0.9999"),
        (fmt.iou, 1.0, "1.000"),
        (fmt.pct, 20.0, "+20.0%"),
        (fmt.pct, -3.14, "-3.1%"),
        (fmt.count, 0, "0"),
        (fmt.count, None, "—"),
        (fmt.utc, 0, "1970-01-01 00:00:00 UTC"),
    ],
)
def test_formatting(func, value, text):
    assert func(value) == text
