"""The engine of a run: which backend runs which model, and how. One frozen spec shared
by the three front doors (``DerainConfig.engine``, ``LiveConfig.engine``,
``BenchConfig.engine``) and by the batch and Ray executors, and :func:`open_engine`, the
one place a backend is made from it, so a backend option added to
:mod:`.backends.options` reaches every command through one path::

    spec = EngineSpec(backend="onnxruntime", threads=2, smooth=False)
    with open_engine(spec) as backend:
        backend.infer(frames)

Low in the layering: it imports the backends, the models, the errors and the
smoother's defaults, never derain, live, bench or the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .backends import ALL_PRECISIONS, create_backend
from .backends.base import Backend
from .backends.options import DEFAULTS, BackendOptions
from .catalog import WINDOW_MODES, ModelInfo, resolve_model
from .errors import ConfigError
from .smooth.core import DEFAULT_STRENGTH

log = logging.getLogger(__name__)
WINDOWS = ("auto", *WINDOW_MODES)
OPTION_TYPES = tuple(DEFAULTS.values())
# create_backend's signature: (name or typed options, model, precision, threads, options) -> Backend
BackendFactory = Callable[..., Backend]

__all__ = ["WINDOWS", "EngineSpec", "open_engine"]


@dataclass(frozen=True)
class EngineSpec:
    """How frames are derained, whatever reads and writes them.

    ``backend``: a name (``auto`` chooses; the name itself is checked when the backend is
    made) or one backend's typed options (``TRT(workspace_mb=2048)``: that backend);
    ``model``: a manifest name or an .onnx path (None: the default model); ``precision``:
    ``auto`` (OpenVINO and ONNX Runtime pick and check their fastest, fp32 elsewhere) or
    one of fp32, bf16, fp16, int8; ``threads``: the CPU backends' threads where their
    options leave them at 0 (0: the library's choice); ``batch``: frames per inference
    call; ``smooth``/``smooth_strength``: the temporal smoother; ``device_frames``: keep
    frames on the backend's device (None: when it is a GPU); ``backend_options``: typed
    options for whichever backend runs (:mod:`.backends.options`); ``window``: which
    neighbours a multi-frame model reads, ``centred``, ``causal`` or ``auto`` (files:
    centred; live: centred when the latency bound allows)."""

    backend: str | BackendOptions = "auto"
    model: str | None = None
    precision: str = "auto"
    threads: int = 0
    batch: int = 1
    smooth: bool = True
    smooth_strength: float = DEFAULT_STRENGTH
    device_frames: bool | None = None
    backend_options: tuple[BackendOptions, ...] = ()
    window: str = "auto"

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ConfigError(f"window {self.window!r}: choose {', '.join(WINDOWS)}")
        if self.precision not in ALL_PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose from "
                              f"{', '.join(ALL_PRECISIONS)}")
        if self.batch < 1:
            raise ConfigError(f"batch must be >= 1, got {self.batch}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        if not 0.0 <= self.smooth_strength <= 1.0:
            raise ConfigError(f"smoother strength must be within 0-1, got {self.smooth_strength}")
        if not isinstance(self.backend, (str, *OPTION_TYPES)):
            raise ConfigError(f"backend {self.backend!r}: give a name or a backend's options "
                              "(backends.TRT ...)")
        options = tuple(self.backend_options)
        bad = [o for o in options if not isinstance(o, OPTION_TYPES)]
        if bad:
            raise ConfigError(f"backend options {bad[0]!r}: give backends.TRT, Torch, ORT or OV")
        object.__setattr__(self, "backend_options", options)  # a list given is kept as a tuple

    @property
    def backend_name(self) -> str:
        """The backend asked for (``auto`` before it is chosen)."""
        return self.backend if isinstance(self.backend, str) else self.backend.name

    def resolve(self, use: str = "files") -> ModelInfo:
        """The spec's model: the one it names, else the default model for ``use``
        (``files`` or ``live``: :func:`~.catalog.default_name`)."""
        return resolve_model(self.model, use=use)

    def create(self, model: ModelInfo | None = None, factory: BackendFactory | None = None) -> Backend:
        """The backend this spec asks for, not yet activated (:func:`open_engine`
        activates it). ``model`` replaces the spec's (a stills model, a bench variant's,
        live's default); ``factory`` replaces :func:`~.backends.create_backend` (tests,
        benchmarks)."""
        make = factory or create_backend
        return make(self.backend, model if model is not None else self.resolve(), self.precision,
                    self.threads, self.backend_options)


@contextmanager
def open_engine(spec: EngineSpec, model: ModelInfo | None = None,
                factory: BackendFactory | None = None) -> Iterator[Any]:
    """The active backend of ``spec`` for the ``with`` block, released after it (also
    on an error). Where a backend outlives one block (a batch's, a benchmark's variants
    taken in turn), enter this in a :class:`contextlib.ExitStack`."""
    with spec.create(model, factory) as backend:
        yield backend
