"""Shared CLI plumbing: the typer app, logging set-up and the error boundary.

A signal while the command line starts (imports take about a second) ends it with
``Interrupted (nothing written)`` and exit 130, not a traceback: the handler is set
before this module's own imports and put back (KeyboardInterrupt again) when a
command starts (:func:`handle_errors`). Import this module first to cover the others.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_at_startup(signum: int, frame: object) -> None:
    sys.stderr.write("Interrupted (nothing written)\n")
    raise SystemExit(130)


STARTUP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP"))
                        if s is not None)
if os.path.basename(sys.argv[0] if sys.argv else "") in ("stream-derain", "__main__.py"):
    for _sig in STARTUP_SIGNALS:
        signal.signal(_sig, _interrupted_at_startup)


def restore_signals() -> None:
    """Signals back to Python's defaults (SIGINT: KeyboardInterrupt) once a command runs."""
    for sig in STARTUP_SIGNALS:
        if signal.getsignal(sig) is _interrupted_at_startup:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)


import functools  # noqa: E402 - after the startup handler
import logging  # noqa: E402
import re  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import typer  # noqa: E402

from ..errors import ConfigError, StreamDerainError  # noqa: E402
from ..pipeline import RunControl  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Remove rain from video files, images and live streams.")
F = TypeVar("F", bound=Callable[..., Any])
_TYPE_WORDS = {"int": "INTEGER", "str": "TEXT", "float": "FLOAT", "bool": None}


def _help_type(self: Any, ctx: Any) -> str | None:
    """The type column of ``--help`` as click writes it (INTEGER, TEXT, PATH ...): typer
    >= 0.2x shows Python types (``<list[str]>``, ``<bool>`` on flags)."""
    if getattr(self, "is_flag", False):
        return None
    if self.metavar is not None:
        return self.metavar
    inner = _PLAIN_TYPE(self, ctx).strip("<>")
    many = inner.startswith("list[")
    inner = inner[5:-1] if many else inner
    word = _TYPE_WORDS.get(inner.split(" ")[0], inner.upper())
    return None if word is None else word + ("..." if many else "")


_PLAIN_TYPE = getattr(getattr(typer.core, "_TyperParameter", None), "display_type", None)
if _PLAIN_TYPE is not None:
    typer.core._TyperParameter.display_type_rich = _help_type  # type: ignore[attr-defined]
    typer.core.TyperOption.display_type_rich = _help_type  # type: ignore[method-assign]


# help panels (each is its own table: short option lists read at 80 columns)
IO_PANEL = "Input and output"
MODEL_PANEL = "Model and backend"
ENCODE_PANEL = "Encoding"
SMOOTH_PANEL = "Window and smoothing"

def setup_logging(verbose: bool, quiet: bool) -> None:
    """Log lines on stderr: through rich on a terminal (printed above a progress bar,
    which shares :data:`~.progress.console`), timestamped lines otherwise. The encoder's
    and FFmpeg's own messages only with ``-v``."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        from .progress import console

        handler: logging.Handler = RichHandler(console=console, show_path=False, show_time=False,
                                               rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    import av.logging

    av.logging.set_level(av.logging.VERBOSE if verbose else None)


def _other_models(folder: Path, default: Any) -> str:
    """The shipped models beside the default, each with its version, the default's
    ``stills`` and the live streams' default marked (``--version``'s third line; empty
    when there are none)."""
    from ..catalog import default_name, read_manifest

    manifest = read_manifest(folder)
    roles = {default_name(manifest, "live"): " (live streams)",
             default.meta.get("stills") if default.meta else None: " (still images)"}
    return ", ".join(f"{name} v{entry.get('version')}{roles.get(name, '')}"
                     for name, entry in manifest.get("models", {}).items() if name != default.name)


def _version(value: bool) -> None:
    """``--version``: the package's version, then the default model's name, version and
    lineage hash (how it was made, docs/models.md) from the manifest (``model: unavailable
    (reason)`` when it cannot be read; never an error)."""
    if value:
        from .. import __version__

        typer.echo(f"stream-derain {__version__}")
        try:
            from ..catalog import load_model_info, models_dir

            folder = models_dir()
            info = load_model_info(folder=folder)
            window = "single-frame" if info.frames == 1 else f"{info.frames}-frame window"
            lineage = info.meta.get("lineage")
            made = lineage.get("lineage_hash") if isinstance(lineage, dict) else None
            typer.echo(f"model: {info.name}, version {info.version} ({window}), "
                       f"lineage {made or 'unrecorded'}, from {folder}")
            others = _other_models(folder, info)
            if others:
                typer.echo(f"also shipped (--model NAME): {others}")
        except StreamDerainError as exc:
            typer.echo(f"model: unavailable ({exc})")
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:  # a malformed entry
            typer.echo(f"model: unavailable (bad manifest entry: {type(exc).__name__}: {exc})")
        raise typer.Exit()


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    setup_logging(verbose, quiet)


def interrupted() -> None:
    """Ctrl-C / SIGTERM before anything was written: say so, exit 130."""
    typer.echo("Interrupted (nothing written)", err=True)
    raise typer.Exit(130)


def fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


def sigterm_as_interrupt() -> RunControl:
    """The command's run control (:class:`~stream_derain.pipeline.RunControl`), which
    SIGTERM, SIGHUP (a closed terminal or SSH session) and Ctrl-C set from now on, and
    which the command hands to the library: frames in flight are written, the file is
    finalised. The handler also raises KeyboardInterrupt, to end what runs before the
    pipeline (loading a model, connecting) at once."""
    control = RunControl()

    def handler(signum: int, frame: object) -> None:
        control.set()
        raise KeyboardInterrupt

    handler.control = control  # type: ignore[attr-defined] - read by interrupt_requested
    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, handler)
    return control


def interrupt_requested() -> bool:
    """Whether the current run's control (the one the installed SIGINT handler sets) was set."""
    control = getattr(signal.getsignal(signal.SIGINT), "control", None)
    return control is not None and control.is_set()


def parse_bitrate(text: str | None) -> int | None:
    """``4M``, ``800k``, ``2500000`` -> bits per second."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise ConfigError(f"--bitrate {text!r}: give bits per second, e.g. 4M or 800k")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise ConfigError(f"--bitrate must be positive, got {text}")
    return value


def missing_input(command: str, what: str = "input") -> None:
    """A command run without its input: one line, exit 2 (a usage error, as click's)."""
    typer.echo(f"Error: no {what} given; see stream-derain {command} -h", err=True)
    raise typer.Exit(2)


def handle_errors(func: F) -> F:
    """The error boundary: the package's own errors become one line and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            restore_signals()
            return func(*args, **kwargs)
        except StreamDerainError as exc:
            if interrupt_requested():  # e.g. an import cut short by SIGTERM looks like a missing extra
                interrupted()
            fail(str(exc))
        except KeyboardInterrupt:
            interrupted()

    return wrapper  # type: ignore[return-value]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # between the start-up handler and a command's own
        _interrupted_at_startup(signal.SIGINT, None)
