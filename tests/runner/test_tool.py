"""Detecting LiteRT's CompiledModel benchmark_model (no --output_filepath)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import AssetError, ExitCode
from harness.runner import WrongBenchmarkTool, ensure_official_tool, is_compiled_model_tool

DATA = Path(__file__).parent / "data"


def test_compiled_model_help_and_log_are_detected():
    assert is_compiled_model_tool((DATA / "compiled_model_help.txt").read_text())
    assert is_compiled_model_tool((DATA / "compiled_model_log.txt").read_text())


@pytest.mark.parametrize(
    "name", sorted(p.name for p in DATA.glob("*.txt") if not p.name.startswith("compiled_model"))
)
def test_official_tool_output_is_not_flagged(name):
    assert not is_compiled_model_tool((DATA / name).read_text())


def test_error_is_clear_and_an_asset_error():
    with pytest.raises(WrongBenchmarkTool) as info:
        ensure_official_tool(
            (DATA / "compiled_model_help.txt").read_text(), "/data/local/tmp/benchmark_model"
        )
    err = info.value
    assert isinstance(err, AssetError) and err.exit_code == ExitCode.ASSETS
    assert "CompiledModel" in str(err) and "--output_filepath" in str(err)
    assert "/data/local/tmp/benchmark_model" in str(err) and "\n" not in str(err)
    ensure_official_tool((DATA / "official_help.txt").read_text())  # does not raise


def test_non_text_is_not_flagged():
    assert not is_compiled_model_tool("")
    assert not is_compiled_model_tool(None)  # type: ignore[arg-type]
