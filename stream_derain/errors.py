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

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed: install the [{extra}] extra "
                         f"(pip install 'stream-derain[{extra}]')")


def require(module: str, extra: str):  # noqa: ANN201 - returns a module
    """Import an optional heavy module or raise :class:`MissingExtraError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(module, extra) from None
