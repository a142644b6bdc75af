from pathlib import Path

from harness.cli_docs import (
    check_command_line,
    command_lines_in_markdown,
    command_lines_in_python,
    render,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_cli_reference_matches_the_code():
    assert DOC.read_text() == render(), "regenerate: python -m harness.cli_docs > docs/cli.md"


ROOT = Path(__file__).resolve().parent.parent


def _doc_lines():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line, text in command_lines_in_markdown(path.read_text()):
            yield f"{path.relative_to(ROOT)}:{line}", text


def _message_lines():
    for path in sorted((ROOT / "harness").rglob("*.py")):
        for line, text in command_lines_in_python(path.read_text()):
            yield f"{path.relative_to(ROOT)}:{line}", text


def test_every_harness_line_in_docs_exists():
    lines = list(_doc_lines())
    assert len(lines) > 30  # the extractor finds the docs' command lines at all
    problems = [f"{where}: harness {text}: {why}" for where, text in lines
                if (why := check_command_line(text))]  # fmt: skip
    assert not problems, "\n".join(problems)


def test_every_harness_line_in_messages_exists():
    lines = list(_message_lines())
    assert any("assets pin" in text for _, text in lines)  # the hint bench prints is checked
    problems = [f"{where}: harness {text}: {why}" for where, text in lines
                if (why := check_command_line(text))]  # fmt: skip
    assert not problems, "\n".join(problems)


def test_checker_catches_what_does_not_exist():
    assert check_command_line("assets pin arm64-v8a --apk --file x") is None
    assert check_command_line("virtual start --profile SM-G973F") is None
    assert check_command_line("virtual") is None
    assert "no command 'frobnicate'" in check_command_line("assets frobnicate")
    assert "no command 'nope'" in check_command_line("nope --json")
    assert "no option --nope" in check_command_line("bench -m models/x --nope 3")
    found = command_lines_in_python('x = f"then run: harness assets pin {abi}"\n')
    assert found == [(1, "assets pin X")]
    md = "Run `harness devices --json`.\n\n```\n$ harness probe -d SM-G973F | jq .\n```\n"
    assert [t for _, t in command_lines_in_markdown(md)] == [
        "devices --json",
        "probe -d SM-G973F | jq .",
    ]
