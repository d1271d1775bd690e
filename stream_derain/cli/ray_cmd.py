"""``stream-derain derain INPUTS... -o OUT_DIR --ray``: the batch on a Ray cluster.

Thin: runs the jobs that ``batch.plan_jobs`` planned with
:func:`stream_derain.cluster.run_cluster` under one aggregated progress bar, then prints
a table per file (and ``--json``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..derain import DerainConfig
from ..errors import ConfigError

log = logging.getLogger("stream_derain")


@contextmanager
def cluster_bar(total: int, quiet: bool) -> Iterator[Callable[[Any], None]]:
    """One bar for the batch: files done / total, cluster frames/s, elapsed, ETA (rich on a
    terminal; a log line every 5 s otherwise)."""
    if quiet:
        yield lambda p: None
        return
    if not sys.stderr.isatty():
        last = [0.0]

        def line(p: Any) -> None:
            if time.monotonic() - last[0] >= 5.0:
                last[0] = time.monotonic()
                log.info("ray: %d/%d files, %d frames, %.1f fps across the cluster, %d running",
                         p.files, p.total, p.frames, p.fps, len(p.running))

        yield line
        return
    columns = (TextColumn("ray"), BarColumn(), TextColumn("{task.fields[files]}/{task.total:.0f} files"),
               TextColumn("{task.fields[fps]:.1f} frames/s"), TextColumn("elapsed"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar, logs_above(bar.console):
        task = bar.add_task("ray", total=total, files=0, fps=0.0)
        yield lambda p: bar.update(task, completed=p.fraction, files=p.files, fps=p.fps)


@contextmanager
def logs_above(console: Console) -> Iterator[None]:
    """While a bar is live, log records print above it (rich's handler) instead of
    through it."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    saved = root.handlers[:]
    handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
    handler.setLevel(min((h.level for h in saved), default=logging.INFO))
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved


def print_table(result: Any, stderr: bool = False) -> None:
    table = Table(title=f"ray: {result.count('done')} done, {result.count('failed')} failed, "
                        f"{result.count('skipped')} skipped, {result.count('cancelled')} cancelled; "
                        f"{result.frames} frames in {result.seconds:.1f} s, {result.fps:.1f} frames/s, "
                        f"{result.files_per_min:.1f} files/min", title_justify="left")
    for col in ("input", "result", "frames", "fps", "attempts", "worker", "output / reason"):
        table.add_column(col, justify="right" if col in ("frames", "fps", "attempts") else "left")
    for f in result.files:
        worker = f"{f.node} pid {f.pid}" if f.pid else f.node
        table.add_row(f.input, f.status, str(f.frames) if f.frames else "", f"{f.fps:.1f}" if f.fps else "",
                      str(f.attempts) if f.attempts else "", worker,
                      f.output if f.status == "done" else f.error)
    console = Console(stderr=stderr)
    Console(stderr=stderr, width=None if console.is_terminal else 200).print(table)


def run_on_ray(jobs: Sequence[Any], template: DerainConfig, address: str | None, skip_existing: bool,
               json_path: Path | None, quiet: bool) -> None:
    """The --ray branch of ``derain``: ``jobs`` from ``batch.plan_jobs``; exits 1 when a
    file failed, 130 when interrupted (Ctrl-C cancels the outstanding tasks)."""
    from ..cluster import ClusterOptions, import_ray, run_cluster

    import_ray()  # the install hint before any work
    if not jobs:
        raise ConfigError("nothing to do: no videos or images in the inputs")
    opts = ClusterOptions(address=address, skip_existing=skip_existing)
    with cluster_bar(len(jobs), quiet) as bar:
        result = run_cluster(jobs, template, opts, bar)
    to_stdout = json_path is not None and str(json_path) == "-"
    print_table(result, stderr=to_stdout)
    if json_path is not None:
        text = json.dumps(result.as_dict(), indent=2)
        typer.echo(text) if to_stdout else json_path.write_text(text + "\n")
    if result.interrupted:
        log.warning("Interrupted: %d file(s) finished, %d cancelled; run again with --skip-existing to "
                    "resume", result.count("done"), result.count("cancelled"))
        raise typer.Exit(130)
    if result.count("failed"):
        typer.echo(f"Error: {result.count('failed')} of {len(jobs)} file(s) failed", err=True)
        raise typer.Exit(1)
