"""``harness report`` and ``harness tag`` (registered in harness/cli.py; ``harness gate`` lives in
harness/gate_commands.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from harness.errors import UsageError
from harness.store import DEFAULT_STORE, Store
from harness.ui import console

FORMATS = ("html", "md", "json", "junit")
FILE_NAMES = {
    "html": "report.html",
    "md": "report.md",
    "json": "report.json",
    "junit": "report-junit.xml",
}
DEFAULT_OUT = Path("results") / "report"

StoreOption = Annotated[
    Path, typer.Option("--store", metavar="PATH", help="Results store (SQLite).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _open_store(path: Path) -> Store:
    if not Path(path).is_file():
        raise UsageError(f"{path}: no results store; run harness bench first (or pass --store)")
    return Store(path, create=False)  # never writes a schema into a file that is no store


def parse_formats(text: str) -> list[str]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    aliases = {"markdown": "md", "xml": "junit"}
    items = [aliases.get(i, i) for i in items]
    if not items:
        raise UsageError("--format is empty; give some of: " + ",".join(FORMATS))
    unknown = [i for i in items if i not in FORMATS]
    if unknown:
        raise UsageError(f"unknown report format {unknown[0]!r}; known: {','.join(FORMATS)}")
    return [f for f in FORMATS if f in items]


def _writable_file(path: Path, option: str) -> None:
    """``option`` names a file to write: not a folder, in a folder that is not a file."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder: give a file path")
    if any(parent.exists() and not parent.is_dir() for parent in path.parents):
        raise UsageError(f"{option} {path}: a parent of it is a file, not a folder")


def _writable_folder(path: Path, option: str) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file: give a folder")
    if any(parent.exists() and not parent.is_dir() for parent in path.parents):
        raise UsageError(f"{option} {path}: a parent of it is a file, not a folder")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_report(
    store: Store,
    runs: list[str] | None,
    baseline: str | None,
    formats: list[str],
    out: Path,
) -> tuple[dict[str, Path], object]:
    """Render the chosen formats into ``out``; returns ({format: path}, the ReportData)."""
    from harness.report.assemble import load_report, render_json
    from harness.report.junit import render_report_junit
    from harness.report.markdown import render_markdown

    report = load_report(store, runs, baseline, with_samples="html" in formats)
    renderers = {
        "md": render_markdown,
        "json": render_json,
        "junit": render_report_junit,
    }
    written: dict[str, Path] = {}
    for name in formats:
        if name == "html":
            from harness.report.html import render_html

            text = render_html(report)
        else:
            text = renderers[name](report)
        path = Path(out) / FILE_NAMES[name]
        _atomic_write(path, text)
        written[name] = path
    return written, report


def report(
    runs: Annotated[
        list[str] | None,
        typer.Argument(metavar="RUN", help="Run ids or tags (default: the latest run)."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", metavar="RUN|TAG", help="Flag regressions against this run."),
    ] = None,
    formats: Annotated[
        str, typer.Option("--format", metavar="LIST", help="Comma-separated: html,md,json,junit.")
    ] = ",".join(FORMATS),
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Folder for the report files.")
    ] = DEFAULT_OUT,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Write HTML, Markdown, JSON and JUnit reports of runs (vs an optional baseline)."""
    chosen = parse_formats(formats)
    _writable_folder(Path(out), "--out")  # checked before anything is read or written
    with _open_store(store) as db:
        written, data = write_report(db, runs, baseline, chosen, out)
    summary = {
        "runs": [r.id for r in data.runs],
        "baseline": data.baseline.id if data.baseline else None,
        "virtual": data.any_virtual,
        "failing_cells": sum(len(r.failing) for r in data.runs),
        "regressions": sum(len(c.regressions) for c in data.comparisons),
        "files": {k: str(v) for k, v in written.items()},
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    out_console = console()
    for run in data.runs:
        badge = " [magenta]VIRTUAL[/]" if run.any_virtual else ""
        failing = len(run.failing)
        state = f"[red]{failing} failing[/]" if failing else "[green]no failing cell[/]"
        out_console.print(
            f"run {escape(run.label)}{badge}: {len(run.cells)} cells, {state}", highlight=False
        )
    for comparison in data.comparisons:
        n = len(comparison.regressions)
        state = f"[red]{n} regressed[/]" if n else "[green]no regression[/]"
        out_console.print(
            f"vs baseline {escape(comparison.baseline.label)}: {state}", highlight=False
        )
    for name, path in written.items():
        out_console.print(f"{name:>5}: {escape(str(path))}", highlight=False)


_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


def tag(
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or an existing tag).")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Tag, e.g. release-1.2.")],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Name a run (e.g. a release) so later runs can compare against it."""
    if not _TAG_NAME.match(name):
        raise UsageError(
            f"bad tag name {name!r}: use letters, digits and . _ + - (at most 100 characters)"
        )
    with _open_store(store) as db:
        run_id = db.resolve_run(run)
        if db.has_run(name):
            raise UsageError(f"tag {name!r} is a run id; pick another name")
        previous = db.tagged(name)
        db.tag(run_id, name)
    moved = f" (moved from {previous})" if previous and previous != run_id else ""
    console().print(f"tagged {escape(run_id)} as {escape(name)}{moved}", highlight=False)
