"""The training progress display (rich): a live bar per epoch and one summary line after it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.ui import console as default_console


class EpochProgress:
    def __init__(self, console: Console | None, epochs: int, steps: int) -> None:
        self.console = console or default_console()
        self.epochs, self.steps = epochs, steps
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._task = None

    def __enter__(self) -> EpochProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(
            "train", total=self.steps, epoch=epoch, epochs=self.epochs, loss=0.0, ips=0.0
        )

    def advance(self, loss: float, images_per_s: float) -> None:
        self._progress.update(self._task, advance=1, loss=loss, ips=images_per_s)

    def end_epoch(self, record: dict[str, Any], improved: bool) -> None:
        mark = "  [green]best[/]" if improved else ""
        self._progress.console.print(
            f"epoch {record['epoch']:>3}/{self.epochs}  loss {record['loss']:.4f}  "
            f"val_loss {record['val_loss']:.4f}  val IoU [bold]{record['val_iou']:.4f}[/]  "
            f"acc {record['val_acc']:.4f}  {record['images_per_s']:.0f} img/s  "
            f"{record['seconds']:.1f}s{mark}",
            highlight=False,
        )
