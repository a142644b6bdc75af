"""Exit codes: documented, stable, and every user error is one line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.errors import EXIT_CODES, ExitCode, HarnessError

DOC = Path(__file__).resolve().parent.parent / "docs" / "exit-codes.md"


def test_every_code_is_documented_with_its_meaning():
    text = DOC.read_text()
    rows = dict(re.findall(r"^\|\s*(\d+)\s*\|\s*`(\w+)`", text, flags=re.M))
    assert {int(k): v for k, v in rows.items()} == {int(c): c.name for c in ExitCode}
    assert set(EXIT_CODES) == set(ExitCode)


def test_message_is_one_line():
    err = HarnessError("first\nsecond   third")
    assert str(err) == "first second third"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True)


def test_unknown_option_is_usage_error():
    run = _cli("--nope")
    assert run.returncode == ExitCode.USAGE
    assert run.stderr.strip().startswith("error:") and run.stderr.count("\n") == 1
    assert "Traceback" not in run.stderr


def test_help_exits_zero():
    run = _cli("--help")
    assert run.returncode == 0 and "virtual" in run.stdout and "devices" in run.stdout
