"""Automation entry point: `nox -l` lists the sessions.

Installs are reproducible: every session that runs the project installs it under
``constraints.txt`` (the lock, made by ``nox -s lock``), so a fresh machine gets the versions the
suite was tested with. ``nox -s drift`` runs the suite against the newest releases that
pyproject.toml allows, to see drift before it reaches users.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

LOCK = "constraints.txt"
LOCK_PYTHON = "3.11"  # the oldest Python pyproject.toml allows; the lock is universal above it


def _install_locked(session: nox.Session, *args: str) -> None:
    session.install("-c", LOCK, *args)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite under the lock (virtual phones through the real adb server)."""
    _install_locked(session, "-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def drift(session: nox.Session) -> None:
    """Run the test suite against the newest releases pyproject.toml allows (no lock)."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[test]")
    session.run("python", "-m", "pip", "list", "--format=freeze")
    session.run("pytest", *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    """Regenerate constraints.txt from pyproject.toml (uv, universal for Python >= 3.11; the test and gpu extras)."""
    session.install("uv>=0.5")
    session.run(
        "uv", "pip", "compile", "pyproject.toml", "--extra", "test", "--extra", "gpu", "--universal",
        "--python-version", LOCK_PYTHON, "--upgrade", "--custom-compile-command", "nox -s lock",
        "-c", "lock-constraints.in", "-o", LOCK,
    )  # fmt: skip
    # uv reads only the lower bound of Requires-Python: check that pip can install the lock.
    session.run(
        "python", "-m", "pip", "install", "--dry-run", "--quiet", "-c", LOCK, "-e", ".[test]"
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Lint and format-check with ruff (the locked version)."""
    _install_locked(session, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job end to end, on a virtual SM-G973F when no phone is attached."""
    _install_locked(session, "-e", ".")
    session.run("harness", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The harness's own performance benchmarks (ratios measured in one run)."""
    _install_locked(session, "-e", ".")
    session.run("python", "benchmarks/run_all.py", *session.posargs)
