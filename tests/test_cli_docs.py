from pathlib import Path

from harness.cli_docs import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_cli_reference_matches_the_code():
    assert DOC.read_text() == render(), "regenerate: python -m harness.cli_docs > docs/cli.md"
