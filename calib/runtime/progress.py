"""Progress display for long work: counts, elapsed time and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_bar", "stage_progress"]


def progress_bar(console: Console | None = None) -> Progress:
    """A rich progress display (on stderr unless ``console`` is given)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )


class _StageProgress(Progress):
    """Stages that vanish when the work fails, so that an error stays one line."""

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.live.transient = True
        super().__exit__(exc_type, exc, tb)


def stage_progress(console: Console | None = None) -> Progress:
    """A display of stages (on stderr): counted ones with a bar, others with a spinner.

    Each stage shows its elapsed time; stages without a total (``total=None``) pulse. If the
    work inside ``with`` raises, the display is withdrawn (the error line stands alone).
    """
    return _StageProgress(
        SpinnerColumn(finished_text="✓"),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
    )
