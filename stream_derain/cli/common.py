"""Shared CLI plumbing: the typer app, logging set-up and the error boundary."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..errors import StreamDerainError
from ..pipeline import interrupt_noted

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Remove rain from video files, images and live streams.")
F = TypeVar("F", bound=Callable[..., Any])


def setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s" if sys.stderr.isatty() else
                        "%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only.")) -> None:
    setup_logging(verbose, quiet)


def interrupted() -> None:
    """Ctrl-C / SIGTERM before anything was written: say so, exit 130."""
    typer.echo("Interrupted (nothing written)", err=True)
    raise typer.Exit(130)


def fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


def handle_errors(func: F) -> F:
    """The error boundary: the package's own errors become one line and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StreamDerainError as exc:
            if interrupt_noted():  # e.g. an import cut short by SIGTERM looks like a missing extra
                interrupted()
            fail(str(exc))
        except KeyboardInterrupt:
            interrupted()

    return wrapper  # type: ignore[return-value]


def main() -> None:
    app()
