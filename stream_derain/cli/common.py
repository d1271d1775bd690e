"""Shared CLI plumbing: the typer app, logging set-up and the error boundary."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from ..errors import StreamDerainError

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
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def main() -> None:
    app()
