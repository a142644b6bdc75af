"""Generate docs/cli.md from the Typer app, so the CLI reference is always the code's.

``python -m harness.cli_docs > docs/cli.md``; tests/test_cli_docs.py fails when they differ.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import shlex

import typer.main

from harness.cli import app


def _param_rows(command) -> list[str]:
    rows = []
    for p in command.params:
        if p.param_type_name == "argument":
            name = f"`{p.name.upper()}`"
        else:
            name = ", ".join(f"`{o}`" for o in p.opts + list(getattr(p, "secondary_opts", [])))
        helptext = " ".join((getattr(p, "help", None) or "").split())
        default = getattr(p, "default", None)
        if default not in (None, False, (), []) and not callable(default):
            helptext += f" Default: `{default}`."
        rows.append(f"| {name} | {helptext.replace('|', '/')} |")
    return rows


def _walk(group, prefix: str) -> list[str]:
    out = []
    for name in sorted(group.commands):
        command = group.commands[name]
        full = f"{prefix} {name}"
        doc = inspect.cleandoc(command.help or "").splitlines()
        out += [f"## `{full}`", "", doc[0] if doc else "", ""]
        if hasattr(command, "commands"):
            out += [f"Subcommands: {', '.join(f'`{c}`' for c in sorted(command.commands))}.", ""]
            out += _walk(command, full)
            continue
        rows = _param_rows(command)
        if rows:
            out += ["| option | meaning |", "|---|---|", *rows, ""]
    return out


def render() -> str:
    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from the code by `python -m harness.cli_docs > docs/cli.md`;",
        "a test fails when this file and the code disagree. Exit codes: "
        "[exit-codes.md](exit-codes.md).",
        "",
        "Global option: `--debug` shows tracebacks for internal errors.",
        "",
    ]
    lines += _walk(root, "harness")
    return "\n".join(lines).rstrip() + "\n"


# -- command lines in docs and messages ---------------------------------------------------------
# Every `harness ...` line a user may copy (README, docs, error and hint messages) must name a
# command that exists, with options it has (tests/test_cli_docs.py).
_SPAN = re.compile(r"`{1,2}((?:[^`\n]*/)?harness [^`\n]+)`{1,2}")
_FENCE = re.compile(r"^```")
_START = re.compile(r"(?:^|[\s$(])(?:\S*/)?harness ")
# In Python strings, an occurrence counts as a command line after one of these (prose such as
# "a harness results store" does not).
_HINT = re.compile(
    r"(?:\b(?:run|rerun|try|with|use|see|then)\s*:?\s+|`|\[bold\]|\()harness (?=[a-z])"
)
_STOP = {"|", "||", "&&", ";", ">", ">>", "#", "\\", "2>&1"}


def _after_harness(text: str, start: int) -> str:
    return text[start:].split("\n", 1)[0]


def command_lines_in_markdown(text: str) -> list[tuple[int, str]]:
    """(line number, text after ``harness ``) for code spans and code-block lines."""
    found: list[tuple[int, str]] = []
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if fenced:
            m = _START.search(line)
            if m and not line.lstrip().startswith("#"):
                found.append((n, _after_harness(line, m.end())))
            continue
        for span in _SPAN.finditer(line):
            found.append((n, span.group(1).split("harness ", 1)[1]))
    return found


def _string_constants(source: str) -> list[tuple[int, str]]:
    """String literals that are not docstrings; f-string fields become ``X``."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    out: list[tuple[int, str]] = []
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                nested.add(id(value))
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                else:
                    parts.append("X")
            out.append((node.lineno, "".join(parts)))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in nested
        ):
            out.append((node.lineno, node.value))
    return out


def command_lines_in_python(source: str) -> list[tuple[int, str]]:
    found = []
    for line, text in _string_constants(source):
        for m in _HINT.finditer(text):
            found.append((line, _after_harness(text, m.end()).split("`")[0].rstrip(").;")))
    return found


def _tokens(text: str) -> list[str]:
    try:
        raw = shlex.split(text, comments=False)
    except ValueError:
        raw = text.split()
    tokens = []
    for token in raw:
        if token in _STOP or token.startswith("#"):
            break
        tokens.append(token.strip("[]{}").rstrip(",.:;)"))
    return [t for t in tokens if t]


@functools.cache
def _root_command():
    return typer.main.get_command(app)


def check_command_line(text: str) -> str | None:
    """``text`` is what follows ``harness ``: None if the command and options exist, else why."""
    command = _root_command()
    tokens = _tokens(text)
    path = ["harness"]
    while tokens and tokens[0] == "--debug":
        tokens.pop(0)
    while hasattr(command, "commands"):
        if not tokens:
            return None  # `harness virtual` shows the group's help
        word = tokens.pop(0)
        if word in ("--help", "-h"):
            return None
        if word not in command.commands:
            return f"{' '.join(path)}: no command {word!r}"
        path.append(word)
        command = command.commands[word]
    known = {"--help"}
    for param in command.params:
        known.update(param.opts)
        known.update(getattr(param, "secondary_opts", []))
    for token in tokens:
        if token.startswith("-") and len(token) > 1 and not token[1].isdigit():
            name = token.split("=", 1)[0]
            if name not in known and name not in ("-", "--", "...", "--..."):
                return f"{' '.join(path)}: no option {name}"
    return None


if __name__ == "__main__":
    print(render(), end="")
