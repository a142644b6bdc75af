"""``harness/cli.py``: every command is registered, and a broken import is not hidden."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_every_command_is_registered():
    done = _run(
        "from harness.cli import app\nprint(sorted(c.name for c in app.registered_commands))"
    )
    assert done.returncode == 0, done.stderr
    for name in ("train", "convert", "inspect", "import", "bench", "gate", "diagnose"):
        assert f"'{name}'" in done.stdout


def test_a_broken_command_import_surfaces_instead_of_removing_the_command():
    # None in sys.modules makes ``import harness.train.commands`` raise ImportError.
    done = _run("import sys\nsys.modules['harness.train.commands'] = None\nimport harness.cli\n")
    assert done.returncode != 0
    assert "ImportError" in done.stderr or "ModuleNotFoundError" in done.stderr
