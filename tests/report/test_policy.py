"""Policy loading and validation: every error is one line that names the file and the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.errors import ExitCode, UsageError
from harness.policy import THRESHOLDS, device_matches, load_policy, parse_policy

from .conftest import EXAMPLE_POLICY, REPO

GOOD = """\
[gate]
baseline = "release-1.0"

[[rule]]
name = "accuracy"
delegate = ["cpu", "gpu-fp32"]
min_iou_ref = 0.98

[[rule]]
name = "speed"
device = "SM-G973"
variant = "*-fp32"
max_avg_ms = 40
max_regression_pct = 10
"""


def _error(text: str) -> str:
    with pytest.raises(UsageError) as info:
        parse_policy(text, "pol.toml")
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == ExitCode.USAGE
    return message


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_good_policy_parses_rules_in_order():
    policy = parse_policy(GOOD, "pol.toml")
    assert policy.baseline == "release-1.0"
    assert policy.baseline_line == 2
    assert [r.name for r in policy.rules] == ["accuracy", "speed"]
    accuracy, speed = policy.rules
    assert accuracy.line == 4 and speed.line == 9
    assert accuracy.delegates == ("cpu", "gpu-fp32") and accuracy.devices == ("*",)
    assert [(t.key, v) for t, v in speed.limits] == [
        ("max_avg_ms", 40),
        ("max_regression_pct", 10),
    ]
    assert speed.line_of("max_regression_pct") == 14
    assert [r.name for r in policy.needs_baseline()] == ["speed"]


def test_example_policy_is_valid_and_documents_every_key():
    policy = load_policy(EXAMPLE_POLICY)
    assert len(policy.rules) >= 4
    text = EXAMPLE_POLICY.read_text()
    docs = (REPO / "docs" / "report.md").read_text()
    for t in THRESHOLDS:
        assert t.key in text, f"{t.key} is not shown in benchmarks/release.toml"
        assert f"`{t.key}`" in docs, f"{t.key} is not documented in docs/report.md"
    for key in ("name", "device", "variant", "delegate", "baseline"):
        assert f"`{key}`" in docs


def test_syntax_error_names_file_and_line():
    text = GOOD.replace('name = "speed"', 'name = "speed')
    line = _line_of(text, 'name = "speed')
    assert _error(text).startswith(f"pol.toml:{line}: invalid TOML")


@pytest.mark.parametrize(
    ("edit", "needle", "expected"),
    [
        (("max_avg_ms = 40", "max_latency_ms = 40"), "max_latency_ms", "unknown key 'max_latency_ms'"),
        (("min_iou_ref = 0.98", "min_iou_ref = 1.5"), "min_iou_ref", "impossible"),
        (("max_avg_ms = 40", "max_avg_ms = -5"), "max_avg_ms", "impossible"),
        (("max_avg_ms = 40", "max_avg_ms = 0"), "max_avg_ms", "must be above 0"),
        (("max_avg_ms = 40", 'max_avg_ms = "40"'), "max_avg_ms", "must be a number, got str"),
        (("max_avg_ms = 40", "max_avg_ms = true"), "max_avg_ms", "must be a number, got bool"),
        (("max_avg_ms = 40", "max_avg_ms = nan"), "max_avg_ms", "must be finite"),
        (("max_avg_ms = 40", "max_nan = 0.5"), "max_nan", "must be an integer"),
        (("max_avg_ms = 40", "max_nan = -1"), "max_nan", "impossible"),
        (("max_avg_ms = 40", "max_spread_pct = -1"), "max_spread_pct", "impossible"),
        (("max_regression_pct = 10", "max_regression_pct = -20"), "max_regression_pct", "impossible"),
        (("max_avg_ms = 40", 'full_delegation = "yes"'), "full_delegation", "true or false"),
        (('device = "SM-G973"', "device = 7"), "device = 7", "device must be a string"),
        (('device = "SM-G973"', "device = []"), "device = []", "non-empty list"),
        (('"cpu", "gpu-fp32"', '"cpu", "gpu16"'), "gpu16", "unknown delegate 'gpu16'"),
        (('name = "speed"', "name = 3"), "name = 3", "name must be a non-empty string"),
        (('baseline = "release-1.0"', "baseline = 1"), "baseline = 1", "baseline must be"),
        (('baseline = "release-1.0"', 'baseline_tag = "x"'), "baseline_tag", "unknown key"),
    ],
)  # fmt: skip
def test_semantic_errors_name_the_keys_line(edit, needle, expected):
    text = GOOD.replace(*edit)
    assert text != GOOD
    message = _error(text)
    assert message.startswith(f"pol.toml:{_line_of(text, needle)}: "), message
    assert expected in message


def test_unknown_key_suggests_the_close_one():
    message = _error(GOOD.replace("min_iou_ref", "min_iou_reference"))
    assert "did you mean 'min_iou_ref'?" in message


def test_unknown_top_level_key():
    text = GOOD + "\n[thresholds]\nx = 1\n"
    message = _error(text)
    assert message.startswith(f"pol.toml:{_line_of(text, '[thresholds]')}:")
    assert "unknown key 'thresholds'" in message
    message = _error("top = 1\n" + GOOD)
    assert message.startswith("pol.toml:1: unknown key 'top'")


def test_full_delegation_on_cpu_is_impossible():
    text = '[[rule]]\ndelegate = ["cpu", "gpu"]\nfull_delegation = true\n'
    message = _error(text)
    assert message.startswith("pol.toml:2:") and "impossible for cpu" in message


def test_rule_without_checks_and_policy_without_rules():
    assert re.match(r"pol\.toml:1: .*has no check", _error('[[rule]]\ndevice = "*"\n'))
    assert re.match(r"pol\.toml:1: .*has no check", _error("[[rule]]\nfull_delegation = false\n"))
    assert "no rule table" in _error('[gate]\nbaseline = "x"\n')


def test_line_numbers_follow_the_right_rule_table():
    text = "[[rule]]\nmax_nan = 0\n\n# comment = 1\n[[rule]]\nname = 'b'\nmax_nan = -3\n"
    assert _error(text).startswith("pol.toml:7:")


def test_duplicate_rule_names():
    text = "[[rule]]\nname = 'a'\nmax_nan = 0\n[[rule]]\nname = 'a'\nmax_nan = 0\n"
    assert _error(text).startswith("pol.toml:2: two rules are named 'a'")


def test_missing_policy_file(tmp_path: Path):
    with pytest.raises(UsageError, match="no such policy file"):
        load_policy(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("pattern", "serial", "model", "expected"),
    [
        ("SM-G973", "127.0.0.1:5555", "SM-G973F", True),  # model-code prefix
        ("sm_g973f", "127.0.0.1:5555", "SM-G973F", True),  # as adb prints it
        ("SM-G973U", "127.0.0.1:5555", "SM-G973F", False),
        ("SM-G973*", "R58M123", "SM-G973U", True),  # glob over the model
        ("127.0.0.1:*", "127.0.0.1:5555", "SM-G973F", True),  # glob over the serial
        ("R58M123", "R58M123", "SM-G973U", True),  # exact serial
        ("R58M", "R58M123", "SM-G973U", False),  # serials are not prefixes
        ("*", "x", "", True),
    ],
)
def test_device_patterns(pattern, serial, model, expected):
    assert device_matches(pattern, serial, model) is expected
