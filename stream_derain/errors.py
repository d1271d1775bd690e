"""The package's own error types. The CLI turns these into ``Error: ...`` and exit 1;
any other exception is a bug and shows its traceback."""

from __future__ import annotations


class StreamDerainError(Exception):
    """Base class of every expected failure (bad input, missing model, full disk)."""


class InputError(StreamDerainError):
    """The input cannot be read: missing, corrupt, no video stream, wrong shape."""


class OutputError(StreamDerainError):
    """The output cannot be written: exists without --overwrite, unwritable, disk full."""


class BackendError(StreamDerainError):
    """A backend is unavailable or failed to load its model."""


class ModelError(StreamDerainError):
    """A model file or checkpoint is missing, corrupt or of another architecture."""


class ConfigError(StreamDerainError):
    """A configuration file or option is invalid."""


class MissingExtraError(StreamDerainError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str | tuple[str, ...]) -> None:
        extras = (extra,) if isinstance(extra, str) else tuple(extra)
        names = " or ".join(f"[{e}]" for e in extras)
        pips = " or ".join(f"pip install 'stream-derain[{e}]'" for e in extras)
        super().__init__(f"{module} is not installed: install the {names} extra ({pips})")


def require(module: str, extra: str):  # noqa: ANN201 - returns a module
    """Import an optional heavy module or raise :class:`MissingExtraError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(module, extra) from None
