"""Inference backends behind one small interface (:class:`Backend`).

``create_backend('auto', ...)`` picks the best backend that can run here and says
why; the concrete classes import their heavy modules only when activated. Hardware
(CPU features, CUDA) is detected in :mod:`stream_derain.devices` only.

Precisions: ``fp32``, ``fp16``, ``bf16`` (OpenVINO only), ``int8`` (OpenVINO and ONNX
Runtime: the model's INT8 file, see :mod:`stream_derain.quantize`) and ``auto``: on
OpenVINO and ONNX Runtime, int8 where the CPU has 8-bit dot products and the manifest
says the INT8 file passed its quality gate on that backend, else OpenVINO's fastest
precision that passes its check against FP32 (fp32 on ONNX Runtime); fp32 for the other
backends. Each backend logs why it chose what it runs.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator, Mapping

from ..catalog import ModelInfo
from ..devices import cpu_info, has_module, nvidia_driver_present, torch_cuda
from ..errors import BackendError
from .base import Backend
from .options import ORT, OV, TRT, BackendOptions, Torch, options_for

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "openvino", "onnxruntime", "torch")
# backend name -> (module under stream_derain.backends, class); the modules import their
# libraries only when a backend is activated
CLASSES = {"tensorrt": ("tensorrt", "TensorRTBackend"), "openvino": ("openvino", "OpenVINOBackend"),
           "onnxruntime": ("onnxruntime", "OnnxRuntimeBackend"), "torch": ("torch", "TorchBackend")}


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name`` (imports its module, never its library)."""
    module, cls = CLASSES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


class _Precisions(Mapping[str, tuple[str, ...]]):
    """backend name -> the precisions its class declares (``Capabilities.precisions``
    without ``auto``), read from the class on first use of that name."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, ...]] = {}

    def __getitem__(self, name: str) -> tuple[str, ...]:
        if name not in CLASSES:
            raise KeyError(name)
        if name not in self._seen:
            self._seen[name] = tuple(p for p in backend_class(name).capabilities.precisions if p != "auto")
        return self._seen[name]

    def __iter__(self) -> Iterator[str]:
        return iter(CLASSES)

    def __len__(self) -> int:
        return len(CLASSES)


PRECISIONS: Mapping[str, tuple[str, ...]] = _Precisions()
ALL_PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
AUTO_PRECISION = ("openvino", "onnxruntime")  # backends that choose their precision at activation
# CPU backends in the order ``auto`` prefers them, fastest first (README, Performance)
CPU_ORDER = ("openvino", "onnxruntime", "torch")
MODULES = {"tensorrt": ("tensorrt", "tensorrt_rtx"), "openvino": ("openvino",),
           "onnxruntime": ("onnxruntime",), "torch": ("torch",)}

__all__ = ["BACKENDS", "ORT", "OV", "PRECISIONS", "TRT", "Backend", "BackendOptions", "Torch",
           "backend_class", "choose_backend", "create_backend", "installed", "nvidia_driver_present",
           "resolve_precision"]
# module-level seams (tests replace them): what is installed, whether torch sees CUDA
_has = has_module
_torch_cuda = torch_cuda


def installed(name: str) -> bool:
    """Whether the library behind backend ``name`` is installed (nothing imported)."""
    return any(_has(m) for m in MODULES.get(name, ()))


def _cpu_reason(name: str) -> str:
    cpu = cpu_info()
    if name == "openvino":
        fast = [p for p in cpu.native_precisions() if p != "fp32"]
        why = cpu.precision_reason(fast[0]) if fast else "fp32 only (no bf16/fp16 units), on par or better"
        return f"no usable GPU; openvino is the fastest installed CPU backend here: {why}"
    if name == "onnxruntime":
        fast = [p for p in cpu.native_precisions() if p != "fp32"]
        gain = f"; this CPU computes {fast[0]} in hardware, where openvino ran 2-3x faster" if fast else ""
        return (f"no usable GPU and openvino is not installed (pip install 'stream-derain[openvino]'{gain}); "
                "onnxruntime on the CPU")
    return "no usable GPU; onnxruntime and openvino are not installed; torch on the CPU"


def choose_backend() -> tuple[str, str]:
    """(backend name, reason) for ``--backend auto``."""
    cuda = _torch_cuda()
    if cuda and installed("tensorrt"):
        from ..trt.probe import engine_support

        ok, why = engine_support()  # looks only: imports neither TensorRT flavour
        if ok:
            return "tensorrt", f"GPU and TensorRT present: {why}"
        log.info("not using TensorRT: %s", why)
    if cuda:
        return "torch", "torch sees a CUDA GPU"
    for name in CPU_ORDER:
        if installed(name):
            return name, _cpu_reason(name)
    raise BackendError("no backend installed: pip install onnxruntime (or the [openvino] extra, or the "
                       "[train] extra for torch)")


def resolve_precision(name: str, precision: str) -> str:
    """``auto`` -> fp32 except for OpenVINO and ONNX Runtime (which choose at activation);
    a precision the backend cannot run is a :class:`BackendError`."""
    if precision not in ALL_PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose from {', '.join(ALL_PRECISIONS)}")
    if precision == "auto":
        return "auto" if name in AUTO_PRECISION else "fp32"
    if precision not in PRECISIONS.get(name, (precision,)):
        hint = {"bf16": "; bf16 runs on --backend openvino",
                "int8": "; int8 runs on --backend openvino or onnxruntime"}.get(precision, "")
        raise BackendError(f"{name} runs {' or '.join(PRECISIONS[name])}, not {precision}{hint}")
    return precision


def create_backend(name: str | BackendOptions, model: ModelInfo, precision: str = "fp32", threads: int = 0,
                   options: Iterable[BackendOptions] = ()) -> Backend:
    """A not-yet-activated backend; use it as a context manager. ``name``: a backend name
    (``auto`` chooses, and the backend's :attr:`~.base.Backend.chosen_because` says why)
    or the options of one (``TRT(workspace_mb=2048)``: that backend); ``options``: typed
    options per backend (:mod:`.options`), the chosen one's are used; ``threads``: the
    CPU backends' threads where their options leave them at 0."""
    why = ""
    if name == "auto":
        name, why = choose_backend()
        log.debug("backend: %s (%s)", name, why)
    backend = _create(name, model, precision, threads, options)
    backend.chosen_because = why
    return backend


def _create(name: str | BackendOptions, model: ModelInfo, precision: str, threads: int,
            options: Iterable[BackendOptions]) -> Backend:
    if not isinstance(name, str):
        options, name = (name, *options), name.name
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    precision = resolve_precision(name, precision)
    opts = options_for(name, options, threads)
    if isinstance(opts, TRT):
        from .tensorrt import TensorRTBackend

        profile = {"max_batch": opts.max_batch} if opts.max_batch else {}
        return TensorRTBackend(model, precision, opts.height, opts.width, workspace_mb=opts.workspace_mb,
                               **profile)
    if isinstance(opts, OV):
        from .openvino import OpenVINOBackend

        return OpenVINOBackend(model, precision, threads=opts.threads, streams=opts.streams)
    if isinstance(opts, ORT):
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, precision, threads=opts.threads)
    from .torch import TorchBackend

    return TorchBackend(model, precision, device=opts.device)
