"""Inference backends behind one small interface (:class:`Backend`).

``create_backend('auto', ...)`` picks the best backend that can run here and says
why; the concrete classes import their heavy modules only when activated.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from ..errors import BackendError
from ..models import ModelInfo
from .base import Backend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked install counts as absent
        return False


def nvidia_driver_present() -> bool:
    """Cheap probe (no torch import): is an NVIDIA kernel driver loaded?"""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def _torch_cuda() -> bool:
    if not _has("torch") or not nvidia_driver_present():
        return False
    import torch

    return torch.cuda.is_available()


def choose_backend() -> tuple[str, str]:
    """(backend name, reason) for ``--backend auto``."""
    if _torch_cuda() and (_has("tensorrt") or _has("tensorrt_rtx")):
        from ..trt.probe import engine_support

        ok, why = engine_support()  # looks only: imports neither TensorRT flavour
        if ok:
            return "tensorrt", f"GPU and TensorRT present: {why}"
        log.info("not using TensorRT: %s", why)
    if _torch_cuda():
        return "torch", "torch sees a CUDA GPU"
    if _has("onnxruntime"):
        return "onnxruntime", "no GPU backend can run here; onnxruntime on the CPU"
    if _has("torch"):
        return "torch", "onnxruntime is not installed; torch on the CPU"
    raise BackendError("no backend installed: pip install onnxruntime (or the [train] extra for torch)")


def create_backend(name: str, model: ModelInfo, precision: str = "fp32", threads: int = 0) -> Backend:
    """A not-yet-activated backend; use it as a context manager."""
    if name == "auto":
        name, why = choose_backend()
        log.info("backend: %s (%s)", name, why)
    if name == "tensorrt":
        from .tensorrt import TensorRTBackend

        return TensorRTBackend(model, precision)
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, precision, threads=threads)
    if name == "torch":
        from .torch import TorchBackend

        return TorchBackend(model, precision)
    raise BackendError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
