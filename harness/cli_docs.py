"""Generate docs/cli.md from the Typer app, so the CLI reference is always the code's.

``python -m harness.cli_docs > docs/cli.md``; tests/test_cli_docs.py fails when they differ.
"""

from __future__ import annotations

import inspect

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


if __name__ == "__main__":
    print(render(), end="")
