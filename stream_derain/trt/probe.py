"""The one place that imports TensorRT: which flavour, which version, which features.

Two flavours share one Python API family:

* ``tensorrt`` (10.x, 11.x): builds and runs engines for the local GPU only; a build
  needs a GPU. 10.x still has ``BuilderFlag.FP16``; 11.x removed it (networks are
  strongly typed, so FP16 means the FP16 ONNX with float16 I/O).
* ``tensorrt_rtx`` (TensorRT for RTX, ``pip install tensorrt-rtx-cu13``): builds
  ahead of time on a machine with no GPU for chosen compute capabilities
  (SM75, SM80, SM86, SM89, SM120, SM121 - not SM90) and compiles kernels at run time.

Real ``tensorrt`` is preferred when both are installed; ``STREAM_DERAIN_TRT`` set to
``tensorrt`` or ``tensorrt_rtx`` overrides. Nothing here imports TensorRT until a
function that needs the module is called; :func:`engine_support` only looks.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..devices import cuda_torch
from ..errors import BackendError, MissingExtraError

log = logging.getLogger(__name__)

FLAVOURS = ("tensorrt", "tensorrt_rtx")
EXTRAS = ("tensorrt", "tensorrt-rtx")  # the pip extras that install them
ENV = "STREAM_DERAIN_TRT"
# compute capabilities TensorRT-RTX can target (its ComputeCapability enum: SMxy)
RTX_TARGETS = ((7, 5), (8, 0), (8, 6), (8, 9), (12, 0), (12, 1))
PORTABLE = "portable"  # TensorRT-RTX's own default set of targets (8.0, 8.6, 8.9, 12.0+)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def installed_flavours() -> list[str]:
    """The flavours importable here, in order of preference."""
    return [f for f in FLAVOURS if _has(f)]


def chosen_flavour() -> str:
    """The flavour :func:`load` will import (env override, else tensorrt, else RTX)."""
    wanted = os.environ.get(ENV, "").strip()
    if wanted:
        if wanted not in FLAVOURS:
            raise BackendError(f"{ENV}={wanted!r}: choose tensorrt or tensorrt_rtx")
        if not _has(wanted):
            raise BackendError(f"{ENV}={wanted} but {wanted} is not installed")
        return wanted
    found = installed_flavours()
    if not found:
        raise MissingExtraError("tensorrt or tensorrt_rtx", EXTRAS)
    return found[0]


@dataclass(frozen=True)
class GpuInfo:
    """The GPU torch sees (device 0 or the current device)."""

    name: str
    capability: tuple[int, int]

    @property
    def sm(self) -> str:
        return f"sm{self.capability[0]}{self.capability[1]}"


def gpu_info() -> GpuInfo | None:
    """The current CUDA device as torch sees it, or None without torch or a GPU."""
    torch = cuda_torch()
    if torch is None:
        return None
    dev = torch.cuda.current_device()
    return GpuInfo(torch.cuda.get_device_name(dev), tuple(torch.cuda.get_device_capability(dev)))


@dataclass(frozen=True)
class TrtInfo:
    """An imported TensorRT flavour and what its API offers."""

    flavour: str
    version: str
    trt: ModuleType
    fp16_flag: bool  # BuilderFlag.FP16 exists (tensorrt 10.x)
    strongly_typed_flag: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists
    compute_capability_api: bool  # IBuilderConfig.set_compute_capability (RTX AOT targets)
    timing_cache: bool  # a timing cache does something (RTX: deprecated no-op)
    progress_monitor: bool  # IBuilderConfig.progress_monitor + IProgressMonitor

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def tag(self) -> str:
        """Short, file-name-safe flavour+version: 'trt10.13.0.35' or 'trtx1.7.1.116'."""
        return ("trtx" if self.flavour == "tensorrt_rtx" else "trt") + self.version

    @property
    def builds_without_gpu(self) -> bool:
        return self.compute_capability_api

    def describe(self) -> str:
        feats = [n for n, ok in (("fp16-flag", self.fp16_flag), ("strongly-typed", self.strongly_typed_flag),
                                 ("aot-targets", self.compute_capability_api),
                                 ("timing-cache", self.timing_cache)) if ok]
        return f"{self.flavour} {self.version} ({', '.join(feats)})"


@functools.lru_cache(maxsize=None)
def load(flavour: str | None = None) -> TrtInfo:
    """Import a TensorRT flavour (default: :func:`chosen_flavour`) and probe its API."""
    flavour = flavour or chosen_flavour()
    try:
        trt = importlib.import_module(flavour)
    except ImportError as exc:
        raise BackendError(f"cannot import {flavour}: {exc}") from None
    version = str(getattr(trt, "__version__", "0"))
    is_rtx = flavour == "tensorrt_rtx"
    info = TrtInfo(
        flavour=flavour, version=version, trt=trt,
        fp16_flag=hasattr(trt.BuilderFlag, "FP16"),
        strongly_typed_flag=hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
        compute_capability_api=hasattr(trt, "ComputeCapability")
        and hasattr(trt.IBuilderConfig, "set_compute_capability"),
        timing_cache=not is_rtx and hasattr(trt.IBuilderConfig, "create_timing_cache"),
        progress_monitor=hasattr(trt, "IProgressMonitor") and hasattr(trt.IBuilderConfig, "progress_monitor"),
    )
    log.debug("TensorRT: %s", info.describe())
    return info


def parse_compute_capability(text: str) -> tuple[int, int]:
    """'8.6', '86', 'sm86', 'SM_86', '12.0', 'sm120' -> (major, minor)."""
    s = text.strip().lower().replace("_", "")
    s = s[2:] if s.startswith("sm") else s
    m = re.fullmatch(r"(\d+)\.(\d)", s) or re.fullmatch(r"(\d+)(\d)", s)
    if not m:
        raise BackendError(f"compute capability {text!r} not understood; write e.g. 8.6 or sm86")
    return int(m.group(1)), int(m.group(2))


def parse_targets(text: str | None) -> tuple[tuple[int, int], ...]:
    """A comma-separated list of compute capabilities ('8.6,8.9'); empty for None."""
    if not text:
        return ()
    return tuple(sorted({parse_compute_capability(p) for p in text.split(",") if p.strip()}))


def cc_enum(info: TrtInfo, cc: tuple[int, int]) -> Any:
    """The ``ComputeCapability.SMxy`` member for ``cc`` or a BackendError naming the choices."""
    member = getattr(info.trt.ComputeCapability, f"SM{cc[0]}{cc[1]}", None)
    if member is None:
        have = ", ".join(f"{a}.{b}" for a, b in RTX_TARGETS)
        raise BackendError(f"{info.flavour} {info.version} cannot target compute capability "
                           f"{cc[0]}.{cc[1]} (it can: {have})")
    return member


@dataclass(frozen=True)
class Target:
    """What an engine is built for: explicit compute capabilities, RTX's portable
    default set, or (standard TensorRT) the local GPU."""

    ccs: tuple[tuple[int, int], ...]
    gpu: GpuInfo | None = None

    @property
    def tag(self) -> str:
        """File-name-safe: 'portable', 'sm86', 'sm86+sm89', 'sm90-nvidia-h100-80gb-hbm3'."""
        base = "+".join(f"sm{a}{b}" for a, b in self.ccs) or PORTABLE
        if self.gpu is None:
            return base
        return base + "-" + re.sub(r"[^a-z0-9]+", "-", self.gpu.name.lower()).strip("-")


def choose_target(info: TrtInfo, requested: str | None = None, gpu: GpuInfo | None = None) -> Target:
    """The build target: the user's compute capability, else the local GPU, else (RTX
    on a GPU-less machine) the portable default set. Standard TensorRT always builds
    for the local GPU and so needs one."""
    ccs = parse_targets(requested)
    if not info.compute_capability_api:  # standard TensorRT: the local GPU, nothing else
        if gpu is None:
            raise BackendError(f"{info.flavour} {info.version} needs an NVIDIA GPU to build engines; "
                               "install tensorrt-rtx-cu13 to build ahead of time without one")
        if ccs and ccs != (gpu.capability,):
            raise BackendError(f"{info.flavour} builds only for the local GPU ({gpu.name}, "
                               f"{gpu.capability[0]}.{gpu.capability[1]}); "
                               "use tensorrt_rtx for other targets")
        return Target((gpu.capability,), gpu)
    if not ccs and gpu is not None:
        ccs = (gpu.capability,)
    for cc in ccs:
        cc_enum(info, cc)  # fails early with the list of valid targets
    return Target(ccs)


def engine_support() -> tuple[bool, str]:
    """Whether TensorRT engines can run here, and why (without importing TensorRT)."""
    flavours = installed_flavours()
    if not flavours:
        return False, "neither tensorrt nor tensorrt_rtx is installed"
    gpu = gpu_info()
    if gpu is None:
        return False, f"{flavours[0]} is installed but torch sees no CUDA GPU"
    try:
        flavour = chosen_flavour()
    except BackendError as exc:
        return False, str(exc)
    if flavour == "tensorrt_rtx" and gpu.capability not in RTX_TARGETS:
        return False, (f"tensorrt_rtx cannot run on {gpu.name} (compute capability "
                       f"{gpu.capability[0]}.{gpu.capability[1]}); install tensorrt for it")
    return True, f"{flavour} with {gpu.name} ({gpu.sm})"


class _Logger:
    """Factory for a TensorRT ILogger that forwards to :mod:`logging` and remembers
    the last errors (parser, builder and deserialisation messages for our errors)."""

    @staticmethod
    def create(info: TrtInfo) -> Any:
        trt = info.trt
        sev = trt.ILogger.Severity
        levels = {sev.INTERNAL_ERROR: logging.ERROR, sev.ERROR: logging.ERROR,
                  sev.WARNING: logging.WARNING, sev.INFO: logging.DEBUG, sev.VERBOSE: logging.DEBUG - 5}
        trt_log = logging.getLogger(f"{__name__}.{info.flavour}")

        class ForwardingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity: Any, msg: str) -> None:
                level = levels.get(severity, logging.INFO)
                if level >= logging.ERROR:
                    self.errors = (self.errors + [msg])[-20:]
                    level = logging.WARNING  # callers raise a BackendError quoting it
                trt_log.log(level, "%s", msg)

            def take_errors(self) -> list[str]:
                errs, self.errors = self.errors, []
                return errs

        return ForwardingLogger()


def logger(info: TrtInfo) -> Any:
    """The process-wide TensorRT logger of a flavour (TensorRT wants one per process)."""
    return _logger(info.flavour)


@functools.lru_cache(maxsize=None)
def _logger(flavour: str) -> Any:
    return _Logger.create(load(flavour))
