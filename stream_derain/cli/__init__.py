"""The ``stream-derain`` command line: thin typer commands over the library.

Each command parses its options, builds a config, calls one public function, and
turns :class:`~stream_derain.errors.StreamDerainError` into ``Error: ...`` and exit 1.
Command modules register themselves on :data:`app`; only this package configures
logging.
"""

from __future__ import annotations

# isort: off
# common first: it sets the start-up signal handler before the heavy imports below
from . import common  # noqa: F401
# importing a command module registers its commands on ``app``
from . import (  # noqa: F401
    bench_cmd,
    derain_cmd,
    engine_cmd,
    eval_cmd,
    live_cmd,
    quantize_cmd,
    train_cmd,
    transfer_cmd,
)
from .common import app, main
# isort: on

__all__ = ["app", "main"]
