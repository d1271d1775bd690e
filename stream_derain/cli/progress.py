"""Progress reporting: a rich bar (frames, fps, ETA) on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("stream_derain")
console = Console(stderr=True)  # shared by the log handler and the bar: logs print above the bar


class LogProgress:
    """Plain progress lines, at most one every ``every`` seconds."""

    def __init__(self, label: str, every: float = 5.0) -> None:
        self.label, self.every = label, every
        self.t0 = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every and done != total:
            return
        self.last = now
        fps = done / max(now - self.t0, 1e-9)
        of = f"/{total}" if total else ""
        eta = f", ETA {(total - done) / fps:.0f}s" if total and fps > 0 else ""
        log.info("%s: %d%s frames, %.1f fps%s", self.label, done, of, fps, eta)


@contextmanager
def progress_reporter(label: str, quiet: bool = False) -> Iterator:
    """Yields a ``callback(done, total)``."""
    if quiet:
        yield lambda done, total: None
        return
    if not sys.stderr.isatty():
        yield LogProgress(label)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.1f} fps"), TextColumn("elapsed"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None, fps=0.0)
        t0 = time.monotonic()

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None, fps=done / max(time.monotonic() - t0, 1e-9))

        yield update
