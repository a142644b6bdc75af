"""The ``harness`` command line. Thin: every command calls a library function.

Errors: a :class:`~harness.errors.HarnessError` prints one line (``error: ...``) to stderr and
exits with its code (docs/exit-codes.md); anything else is a bug: exit 70, traceback only with
``--debug``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def _interrupted_while_starting(_signum: int, _frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)  # nothing has been done yet: only imports were running


# Ctrl-C while the commands are imported (seconds: TensorFlow, LiteRT) ends quietly with 130
# instead of a traceback; the usual handler is back once they are (end of this module).
_STARTING = threading.current_thread() is threading.main_thread() and (
    signal.getsignal(signal.SIGINT) is signal.default_int_handler
)
if _STARTING:
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import typer  # noqa: E402
from rich.markup import escape  # noqa: E402
from typer.exceptions import Abort, Exit, TyperException  # noqa: E402

from harness.config import adb_port_problem  # noqa: E402
from harness.errors import ExitCode, HarnessError  # noqa: E402
from harness.ui import err_console  # noqa: E402

# adbutils reads ANDROID_ADB_SERVER_PORT when it is imported (below): a bad value is a one-line
# usage error here rather than its traceback.
if os.environ.get("ANDROID_ADB_SERVER_PORT") == "":
    del os.environ["ANDROID_ADB_SERVER_PORT"]  # empty is unset (config.adb_servers_from_env)
if _STARTING and (_problem := adb_port_problem(os.environ.get("ANDROID_ADB_SERVER_PORT"))):
    os.write(2, f"error: {_problem}\n".encode())
    sys.exit(int(ExitCode.USAGE))

app = typer.Typer(
    name="harness",
    help="Train, convert, benchmark and diagnose portrait-segmentation models on phones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for internal errors."),
) -> None:
    """Global options."""


def demo(
    keep: bool = typer.Option(False, "--keep", help="Leave the virtual phone running."),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain and reconvert the demo model."),
    epochs: int = typer.Option(4, "--epochs", help="Training epochs for the demo model."),
) -> None:
    """Run the main job end to end (on a virtual SM-G973F when no phone is attached)."""
    from harness.demo import run

    run(keep=keep, fresh=fresh, epochs=epochs)


def _register() -> None:
    from harness.devices import commands as device_commands
    from harness.virtual import commands as virtual_commands

    app.command("devices")(device_commands.devices)
    app.command("probe")(device_commands.probe)
    app.add_typer(virtual_commands.app, name="virtual")
    from harness import asset_commands

    app.add_typer(asset_commands.app, name="assets")
    app.command("demo")(demo)
    from harness import gate_commands
    from harness.bench import commands as bench_commands
    from harness.diagnose import commands as diagnose_commands
    from harness.report import commands as report_commands

    app.command("bench")(bench_commands.bench)
    app.command("report")(report_commands.report)
    app.command("tag")(report_commands.tag)
    app.command("gate")(gate_commands.gate)
    app.command("diagnose")(diagnose_commands.diagnose)
    from harness.convert import commands as convert_commands
    from harness.train import commands as train_commands

    app.command("train")(train_commands.train)
    app.command("convert")(convert_commands.convert)
    app.command("inspect")(convert_commands.inspect)
    app.command("import")(convert_commands.import_model)


_register()
if _STARTING:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="harness", standalone_mode=False)
        # Non-standalone Typer returns an exit code instead of exiting (e.g. 130 for Ctrl-C,
        # 0 for --help); commands themselves return None.
        if isinstance(code, int) and code:
            if code == ExitCode.INTERRUPTED:
                err_console().print("[yellow]interrupted[/]; results measured so far are kept")
            sys.exit(code)
    except HarnessError as exc:
        if debug:
            raise
        err_console().print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(int(exc.exit_code))
    except Abort:
        err_console().print("[yellow]interrupted[/]; results measured so far are kept")
        sys.exit(int(ExitCode.INTERRUPTED))
    except KeyboardInterrupt:
        err_console().print("[yellow]interrupted[/]; results measured so far are kept")
        sys.exit(int(ExitCode.INTERRUPTED))
    except TyperException as exc:
        msg = " ".join(exc.format_message().split())
        err_console().print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
        sys.exit(int(ExitCode.USAGE))
    except Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say so in one line, details with --debug
        if debug:
            raise
        err_console().print(
            f"[bold red]internal error:[/] {type(exc).__name__}: "
            f"{escape(' '.join(str(exc).split()))} "
            "(rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(int(ExitCode.INTERNAL))
