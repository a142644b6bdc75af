"""Automation entry point: `nox -l` lists the sessions."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (virtual phones through the real adb server; no phone needed)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint and format-check with ruff."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job end to end, on a virtual SM-G973F when no phone is attached."""
    session.install("-e", ".")
    session.run("harness", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The harness's own performance benchmarks (ratios measured in one run)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run_all.py", *session.posargs)
