"""`harness gate`: table of every check, JUnit XML, exit 0 / 1 / 2; missing never passes."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.gate import evaluate
from harness.policy import parse_policy
from harness.report.data import load_run

from .conftest import EXAMPLE_POLICY, SLOW, WRONG


def _gate(cli, store, tmp_path: Path, *args: str, policy: Path = EXAMPLE_POLICY):
    junit = tmp_path / "gate.xml"
    result = cli(
        "gate", "--store", store.path, "--policy", policy, "--junit", junit, *args
    )  # fmt: skip
    return result, junit


def _junit_failures(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [tc.get("name") for tc in root.iter("testcase") if tc.find("failure") is not None]


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_healthy_run_passes_the_example_policy(cli, bench, store, tmp_path):
    run = bench.run()
    result, junit = _gate(cli, store, tmp_path, run)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "PASSED all" in result.stdout
    assert "VIRTUAL" in result.stdout  # virtual phones are labelled in the table and summary
    root = ET.parse(junit).getroot()
    assert int(root.get("tests")) > 50 and root.get("failures") == "0"
    assert {s.get("name") for s in root.iter("testsuite")} >= {
        "gate: no NaN or Inf in any output",
        "gate: latency (generous: virtual phones)",
    }


def test_wrong_and_slow_cells_fail_with_the_checks_listed(cli, bench, store, tmp_path):
    bench.run()
    run = bench.run(wrong=WRONG, slow=SLOW)
    result, junit = _gate(cli, store, tmp_path, run)
    assert result.exit_code == 1
    assert "gate failed: 3 of" in result.stderr
    failed = result.stdout.split("FAILED 3 of")[1]
    assert "SM-G973F [virtual] softmax-fp32 gpu: NaN/Inf values 256 (limit <= 0)" in failed
    assert "SM-G973F [virtual] softmax-fp32 gpu: IoU vs reference 0.280 (limit >= 0.950)" in (
        failed
    )
    assert "SM-G973U [virtual] sigmoid-fp16 cpu: avg latency 5,000 ms (limit <= 2,000 ms)" in (
        failed
    )
    assert sorted(_junit_failures(junit)) == [
        "sigmoid-fp16 cpu: avg latency <= 2,000 ms",
        "softmax-fp32 gpu: IoU vs reference >= 0.950",
        "softmax-fp32 gpu: NaN/Inf values <= 0",
    ]


def test_latest_run_is_the_default_and_json_output(cli, bench, store, tmp_path):
    bench.run()
    latest = bench.run(slow=SLOW, slow_ms=2500.0)
    result, _ = _gate(cli, store, tmp_path, "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["run"] == latest and payload["virtual"] is True
    assert payload["failed"] == 1 and payload["passed"] is False
    (bad,) = [r for r in payload["results"] if not r["passed"]]
    assert (bad["device"], bad["variant"], bad["delegate"], bad["check"]) == (
        "SM-G973U",
        "sigmoid-fp16",
        "cpu",
        "max_avg_ms",
    )
    assert bad["value"] == 2500.0


def test_rule_matching_nothing_fails_loudly(cli, bench, store, tmp_path):
    run = bench.run()
    policy = _policy(tmp_path, '[[rule]]\nname = "pixel"\ndevice = "Pixel-7"\nmax_avg_ms = 100\n')
    result, junit = _gate(cli, store, tmp_path, run, policy=policy)
    assert result.exit_code == 1
    assert "rule matches no measured cell" in result.stdout
    assert _junit_failures(junit) == ["* *: matches a measured cell >= 1 cell"]


def test_failed_and_unmeasured_cells_never_pass(bench, store):
    run_id = bench.run(
        failed=("SM-G973F", "softmax-int8", "cpu"),
        unmeasured=(("SM-G973U", "softmax-int8", "gpu"),),
        status="interrupted",
    )
    policy = parse_policy('[[rule]]\nvariant = "softmax-int8"\nmax_avg_ms = 1000\n', "p.toml")
    result = evaluate(policy, load_run(store, run_id))
    failed = {(c.device, c.delegate): c for c in result.failed}
    assert set(failed) == {("SM-G973F", "cpu"), ("SM-G973U", "gpu")}
    assert "SIGSEGV" in failed[("SM-G973F", "cpu")].detail
    assert "run interrupted" in failed[("SM-G973U", "gpu")].detail
    assert len(result.checks) == 6 and not result.passed


def test_null_metric_fails_not_passes(bench, store):
    run_id = bench.run()
    policy = parse_policy('[[rule]]\ndevice = "SM-G973F"\nmax_p95_ms = 1000\n', "p.toml")
    result = evaluate(policy, load_run(store, run_id))
    assert result.checks and all(not c.passed for c in result.checks)
    assert {c.detail for c in result.checks} == {"not measured"}


def test_full_delegation(bench, store):
    run_id = bench.run()
    run = load_run(store, run_id)
    text = '[[rule]]\nvariant = "{v}"\ndelegate = "gpu*"\nfull_delegation = true\n'
    assert evaluate(parse_policy(text.format(v="sigmoid-*"), "p.toml"), run).passed
    partial = evaluate(parse_policy(text.format(v="softmax-int8"), "p.toml"), run)
    assert len(partial.failed) == 4
    assert "unsupported ops: QUANTIZE" in partial.failed[0].detail
    cpu = evaluate(parse_policy(text.format(v="*").replace("gpu*", "c*"), "p.toml"), run)
    assert not cpu.passed and "nothing to delegate" in cpu.failed[0].detail


REGRESSION = '[gate]\nbaseline = "release-1.0"\n\n[[rule]]\nmax_regression_pct = {limit}\n'


@pytest.mark.parametrize(("limit", "code"), [(10, 1), (25, 0)])
def test_regression_vs_baseline_tag(cli, bench, store, tmp_path, limit, code):
    bench.run(tag="release-1.0")
    run = bench.run(scale=1.2)
    policy = _policy(tmp_path, REGRESSION.format(limit=limit))
    result, _ = _gate(cli, store, tmp_path, run, "--json", policy=policy)
    assert result.exit_code == code, result.stderr
    payload = json.loads(result.stdout)
    values = [r["value"] for r in payload["results"]]
    assert len(values) == 18 and all(v == pytest.approx(20.0, abs=0.1) for v in values)
    assert {r["measured"] for r in payload["results"]} == {"+20.0%"}


def test_regression_without_baseline_counterpart_fails(bench, store):
    base = bench.run(unmeasured=(("SM-G973F", "softmax-fp32", "cpu"),))
    run = bench.run()
    policy = parse_policy("[[rule]]\nmax_regression_pct = 50\n", "p.toml")
    result = evaluate(policy, load_run(store, run), load_run(store, base))
    (bad,) = result.failed
    assert (bad.device, bad.variant, bad.delegate) == ("SM-G973F", "softmax-fp32", "cpu")
    assert "no baseline cell" in bad.detail


def test_virtual_run_is_not_compared_with_a_real_baseline(bench, store):
    base = bench.run(virtual=False)
    run = bench.run()
    policy = parse_policy("[[rule]]\nmax_regression_pct = 50\n", "p.toml")
    result = evaluate(policy, load_run(store, run), load_run(store, base))
    assert len(result.failed) == 18
    assert "not comparable" in result.failed[0].detail


@pytest.mark.parametrize(
    ("args", "policy_text", "expected"),
    [
        (["--baseline", "nope"], None, "no run or tag 'nope'"),
        (["no-such-run"], None, "no run or tag 'no-such-run'"),
        ([], "[[rule]]\nmax_regression_pct = 10\n", "policy.toml:2: max_regression_pct needs"),
        (
            [],
            "[[rule]]\nmin_iou_ref = 1.5\n",
            "policy.toml:2: rule #1 (rule 1): min_iou_ref = 1.5 is impossible",
        ),
        ([], "[[rule]\nmax_nan = 0\n", "policy.toml:1: invalid TOML"),
        ([], '[gate]\nbaseline = "gone"\n[[rule]]\nmax_nan = 0\n', "policy.toml:2: no run or"),
    ],
)
def test_policy_and_data_errors_exit_2(cli, bench, store, tmp_path, args, policy_text, expected):
    bench.run()
    policy = _policy(tmp_path, policy_text) if policy_text else EXAMPLE_POLICY
    result, junit = _gate(cli, store, tmp_path, *args, policy=policy)
    assert result.exit_code == 2, result.stdout
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not junit.exists()


def test_missing_store_and_policy_exit_2(cli, tmp_path):
    result = cli("gate", "--store", tmp_path / "none.db", "--policy", EXAMPLE_POLICY)
    assert result.exit_code == 2 and "no results store" in result.stderr
    assert not (tmp_path / "none.db").exists()
    result = cli("gate", "--policy", tmp_path / "none.toml")
    assert result.exit_code == 2 and "no such policy file" in result.stderr


TWO_RULES = (
    '[[rule]]\nname = "latency"\nmax_avg_ms = 2000\n\n'
    '[[rule]]\nname = "accuracy"\nvariant = "softmax-*"\nmin_iou_ref = 0.95\n'
)


def _table_rows(stdout: str) -> list[str]:
    """The body rows of the rich table printed first (lines between the box's rules)."""
    return [line for line in stdout.splitlines() if line.startswith("│")]


def test_terminal_output_is_one_line_per_rule_then_the_failures(cli, bench, store, tmp_path):
    run = bench.run(wrong=WRONG, slow=SLOW)
    policy = _policy(tmp_path, TWO_RULES)
    expected = evaluate(parse_policy(TWO_RULES, "p.toml"), load_run(store, run))
    counts = {
        name: (len(checks), sum(c.passed for c in checks), sum(not c.passed for c in checks))
        for name in ("latency", "accuracy")
        if (checks := [c for c in expected.checks if c.rule == name])
    }
    # Precondition: both rules have checks and each has at least one failure.
    assert set(counts) == {"latency", "accuracy"} and all(f for _, _, f in counts.values())
    result, _ = _gate(cli, store, tmp_path, run, policy=policy)
    assert result.exit_code == 1
    rows = _table_rows(result.stdout)
    assert len(rows) == 2, result.stdout  # one line per rule, nothing per check
    for row, (name, line) in zip(rows, (("latency", 1), ("accuracy", 5)), strict=True):
        assert f"{name} (line {line})" in row
        numbers = tuple(int(n) for n in re.findall(r"\b\d+\b", row.split(")", 1)[1]))
        assert numbers == counts[name], row
    assert "PASS " not in result.stdout and "sigmoid-fp32" not in result.stdout
    failures = result.stdout.split(f"FAILED {len(expected.failed)} of {len(expected.checks)}")[1]
    for c in expected.failed:
        assert f"{c.rule}: {c.where}: {c.label} {c.measured} (limit {c.limit})" in failures


def test_verbose_prints_every_check(cli, bench, store, tmp_path):
    run = bench.run(slow=SLOW)
    policy = _policy(tmp_path, TWO_RULES)
    expected = evaluate(parse_policy(TWO_RULES, "p.toml"), load_run(store, run))
    passed = sum(c.passed for c in expected.checks)
    assert passed > 2 and len(expected.failed) == 1  # precondition
    result, _ = _gate(cli, store, tmp_path, run, "--verbose", policy=policy)
    assert result.exit_code == 1
    assert result.stdout.count("PASS") == passed
    assert result.stdout.count("FAIL ") + result.stdout.count("FAIL\n") >= 1
    assert len(_table_rows(result.stdout)) == len(expected.checks)
    assert f"FAILED 1 of {len(expected.checks)} checks" in result.stdout


def test_json_output_is_the_same_with_and_without_verbose(cli, bench, store, tmp_path):
    run = bench.run(slow=SLOW)
    plain, _ = _gate(cli, store, tmp_path, run, "--json")
    verbose, _ = _gate(cli, store, tmp_path, run, "--json", "--verbose")
    assert plain.exit_code == verbose.exit_code == 1
    assert json.loads(plain.stdout) == json.loads(verbose.stdout)
