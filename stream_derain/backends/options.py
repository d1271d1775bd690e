"""Typed per-backend options, in vs-mlrt's ``Backend.TRT(...)`` style: one small frozen
dataclass per backend, checked when made, readable without importing any backend library.

``EngineSpec(backend=TRT(workspace_mb=2048))`` chooses the backend and its options at
once; ``EngineSpec(backend="auto", backend_options=(Torch(device="cuda:1"), TRT(...)))``
gives options for whichever backend ``auto`` picks (:mod:`stream_derain.engine_spec`).
A backend without options of its own
runs its defaults (the CPU backends with the config's ``threads``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar, Union

from ..errors import ConfigError

__all__ = ["ORT", "OV", "TRT", "BackendOptions", "Torch", "options_for", "parse_size"]


def _at_least(value: int | None, low: int, what: str) -> None:
    if value is not None and value < low:
        raise ConfigError(f"{what} must be >= {low}, got {value}")


@dataclass(frozen=True)
class TRT:
    """TensorRT: the engine's shape profile (frames up to ``height`` x ``width``, batches up
    to ``max_batch``; None: 1920x1080, 4; larger frames rebuild once, cached) and the
    builder's workspace in MiB (None: 1024). The workspace is not part of the cache key:
    an engine already cached for the profile is reused as built."""

    name: ClassVar[str] = "tensorrt"
    height: int | None = None
    width: int | None = None
    max_batch: int | None = None
    workspace_mb: int | None = None

    def __post_init__(self) -> None:
        _at_least(self.height, 1, "TensorRT profile height")
        _at_least(self.width, 1, "TensorRT profile width")
        _at_least(self.max_batch, 1, "TensorRT profile batch")
        _at_least(self.workspace_mb, 1, "TensorRT workspace (MiB)")


@dataclass(frozen=True)
class Torch:
    """torch: the device, ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``,
    ``cuda`` or ``cuda:N``."""

    name: ClassVar[str] = "torch"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"torch device {self.device!r}: use auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class _Threads:
    """A CPU backend whose one option is its thread count (0: the config's ``threads``)."""

    name: ClassVar[str]
    threads: int = 0

    def __post_init__(self) -> None:
        _at_least(self.threads, 0, f"{self.name} threads")


@dataclass(frozen=True)
class ORT(_Threads):
    """ONNX Runtime: intra-op threads (0: the config's ``threads``, else all cores)."""

    name: ClassVar[str] = "onnxruntime"


@dataclass(frozen=True)
class OV(_Threads):
    """OpenVINO: inference threads (0: the config's ``threads``, else OpenVINO's choice)
    and inference streams (``NUM_STREAMS``; 1, the default, suits one request at a time;
    0: OpenVINO's choice for its latency hint)."""

    name: ClassVar[str] = "openvino"
    streams: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self.streams, 0, "OpenVINO streams")


BackendOptions = Union[TRT, Torch, ORT, OV]
DEFAULTS: dict[str, type] = {o.name: o for o in (TRT, Torch, ORT, OV)}


def options_for(name: str, given: Iterable[BackendOptions] = (), threads: int = 0) -> BackendOptions:
    """The options backend ``name`` runs with: the ones ``given`` for it, else its defaults;
    ``threads`` fills the CPU backends' threads they leave at 0."""
    given = list(given)
    names = [o.name for o in given]
    if len(set(names)) != len(names):
        raise ConfigError(f"options given twice for one backend: {', '.join(names)}")
    opts = next((o for o in given if o.name == name), None) or DEFAULTS[name]()
    if isinstance(opts, _Threads) and not opts.threads and threads:
        opts = replace(opts, threads=threads)
    return opts


def parse_size(text: str) -> tuple[int, int]:
    """``1280x720`` -> (height, width) = (720, 1280)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or not all(int(v) > 0 for v in m.groups()):
        raise ConfigError(f"size {text!r}: give WIDTHxHEIGHT, e.g. 1920x1080")
    return int(m.group(2)), int(m.group(1))
