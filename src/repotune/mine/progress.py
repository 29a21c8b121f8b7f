"""A progress bar with commits/s on stderr; silent when stderr is not a terminal (CI, pipes,
logs) or REPOTUNE_QUIET=1, so captured output stays clean."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed or 0.0
        return Text(f"{speed:,.0f} commits/s", style="progress.data.speed")


def enabled() -> bool:
    return os.environ.get("REPOTUNE_QUIET") != "1" and sys.stderr.isatty()


@contextmanager
def progress(total: int, label: str = "mining") -> Iterator[Callable[[int], None]]:
    """Yield `update(done)`, which sets the number of commits mined so far."""
    with Progress(
        SpinnerColumn(),
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled(),
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)
