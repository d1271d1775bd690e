"""``build_engine``: a model (or ONNX file) + precision + shape -> a cached TensorRT plan.

The backend and the ``build-engine`` command both come through :func:`get_engine`,
so they agree on keys. Building works without a GPU with TensorRT-RTX; running the
engine needs one (see :mod:`stream_derain.backends.tensorrt`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..catalog import ModelInfo, resolve_model, sha256
from ..errors import BackendError
from . import probe
from .builder import BuildOptions, Profile, build_plan
from .cache import CachedEngine, EngineCache, EngineKey

log = logging.getLogger(__name__)
T = TypeVar("T")
PRECISIONS = ("fp16", "fp32")
DEFAULT_HEIGHT, DEFAULT_WIDTH, DEFAULT_MAX_BATCH = 1080, 1920, 4


@dataclass(frozen=True)
class EngineRequest:
    """Everything the user chooses about an engine."""

    model: ModelInfo
    precision: str = "fp16"
    height: int = DEFAULT_HEIGHT
    width: int = DEFAULT_WIDTH
    max_batch: int = DEFAULT_MAX_BATCH
    dynamic: bool = True
    compute_capability: str | None = None  # '8.6', 'sm86', '8.6,8.9'; None: local GPU or portable
    workspace_mb: int | None = None  # builder workspace; None: builder.WORKSPACE_BYTES (not in the cache key)

    @property
    def profile(self) -> Profile:
        return Profile.for_resolution(self.height, self.width, self.max_batch, self.model.multiple,
                                      self.dynamic, self.model.channels)


def onnx_for(info: probe.TrtInfo, model: ModelInfo, precision: str) -> tuple[Path, str]:
    """(ONNX file, build mode) for a precision: the FP16 ONNX for fp16 (strongly typed),
    else - tensorrt 10.x only - the FP32 ONNX with the FP16 builder flag."""
    if precision not in PRECISIONS:
        raise BackendError(f"precision {precision!r}: choose fp16 or fp32")
    if precision in model.files:
        return model.path(precision), precision
    if precision == "fp16" and "fp32" in model.files and info.fp16_flag:
        log.info("model %s has no FP16 ONNX; using the FP32 one with the FP16 builder flag", model.name)
        return model.path("fp32"), "fp16-flag"
    model.path(precision)  # raises ModelError naming the files there are
    raise AssertionError("unreachable")


def engine_key(info: probe.TrtInfo, onnx_path: Path, mode: str, profile: Profile,
               target: probe.Target) -> EngineKey:
    return EngineKey(model=onnx_path.name.split(".")[0], onnx_sha256=sha256(onnx_path), precision=mode,
                     profile=profile, flavour=info.flavour, version=info.version, target=target.tag)


def get_engine(req: EngineRequest, cache: EngineCache | None = None,
               load: Callable[[bytes], T | None] | None = None, force: bool = False,
               gpu: probe.GpuInfo | None | bool = True) -> tuple[CachedEngine[T], EngineKey]:
    """The cached or freshly built plan for ``req`` (``load`` deserialises it, see
    :meth:`EngineCache.get_or_build`). ``gpu=True`` probes torch for the local GPU;
    pass None to build as if there were none (AOT, TensorRT-RTX only)."""
    info = probe.load()
    gpu_now = probe.gpu_info() if gpu is True else gpu or None
    target = probe.choose_target(info, req.compute_capability, gpu_now)
    onnx_path, mode = onnx_for(info, req.model, req.precision)
    key = engine_key(info, onnx_path, mode, req.profile, target)
    cache = cache or EngineCache()
    folder = Path(cache.folder)  # type: ignore[arg-type]
    tc = folder / f"timing.{info.tag}.{target.tag}.cache" if info.timing_cache else None
    workspace = {"workspace_bytes": req.workspace_mb << 20} if req.workspace_mb else {}
    opts = BuildOptions(precision=mode, profile=req.profile, target=target, input_name=req.model.input_name,
                        timing_cache=tc, **workspace)
    extra = {"onnx": str(onnx_path), "gpu": gpu_now.name if gpu_now else None}
    result = cache.get_or_build(key, lambda: build_plan(info, onnx_path, opts), load, force, extra)
    return result, key


@dataclass(frozen=True)
class BuildReport:
    path: Path
    built: bool
    seconds: float
    flavour: str
    target: str
    profile: Profile
    precision: str


def build_engine(model: str | ModelInfo | None = None, onnx: Path | None = None, precision: str = "fp16",
                 height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH, max_batch: int = DEFAULT_MAX_BATCH,
                 compute_capability: str | None = None, dynamic: bool = True, force: bool = False,
                 cache_dir: Path | None = None) -> BuildReport:
    """Build (or find in the cache) the TensorRT engine for a model; no GPU needed with
    TensorRT-RTX. Returns where the plan is and whether this call built it."""
    info = model if isinstance(model, ModelInfo) else resolve_model(model, onnx)
    req = EngineRequest(info, precision, height, width, max_batch, dynamic, compute_capability)
    result, key = get_engine(req, EngineCache(cache_dir), force=force)
    return BuildReport(result.path, result.built, result.build_seconds, f"{key.flavour} {key.version}",
                       key.target, key.profile, key.precision)
