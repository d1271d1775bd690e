"""ONNX -> serialised TensorRT plan: parse, one optimisation profile, build.

Precision: ``fp16`` builds the FP16 ONNX (float16 weights and I/O) as a strongly
typed network, which every flavour supports; only when a model has no FP16 file and
the flavour still has ``BuilderFlag.FP16`` (tensorrt 10.x) is the FP32 ONNX built
with that flag (``fp16-flag``: float32 I/O). The backend reads the engine's I/O
types, so both work. Everything TensorRT-specific comes from :mod:`.probe`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError
from .probe import Target, TrtInfo, cc_enum, logger

log = logging.getLogger(__name__)

MIN_SIDE = 16  # smallest frame side a dynamic profile accepts (smaller frames are padded)
WORKSPACE_BYTES = 1 << 30


def _align(v: int, multiple: int) -> int:
    return -(-v // multiple) * multiple


@dataclass(frozen=True)
class Profile:
    """Optimisation profile over (batch, height, width) of an input with ``channels``
    channels: 3, or 3K for a K-frame model (the output has 3)."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]
    channels: int = 3

    @classmethod
    def for_resolution(cls, height: int, width: int, max_batch: int = 4, multiple: int = 4,
                       dynamic: bool = True, channels: int = 3) -> Profile:
        """Optimal at ``max_batch`` x height x width (padded to ``multiple``). Dynamic:
        any batch from 1 and any size from MIN_SIDE up to that; else exactly that."""
        if height < 1 or width < 1 or max_batch < 1:
            raise BackendError(f"bad engine shape: {max_batch}x{height}x{width}")
        opt = (max_batch, _align(height, multiple), _align(width, multiple))
        if not dynamic:
            return cls(opt, opt, opt, channels)
        side = _align(MIN_SIDE, multiple)
        return cls((1, min(side, opt[1]), min(side, opt[2])), opt, opt, channels)

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The NCHW min/opt/max shapes for ``set_shape``."""
        c = self.channels
        return tuple((n, c, h, w) for n, h, w in (self.min, self.opt, self.max))  # type: ignore[return-value]

    @property
    def tag(self) -> str:
        """File-name-safe summary: 'n1-4-4.h16-64-64.w16-96-96' (and '.c15' for 15 channels)."""
        parts = zip("nhw", zip(self.min, self.opt, self.max))
        tag = ".".join(f"{k}{a}-{b}-{c}" for k, (a, b, c) in parts)
        return tag if self.channels == 3 else f"{tag}.c{self.channels}"

    def covers(self, n: int, h: int, w: int) -> bool:
        return all(lo <= v <= hi for v, lo, hi in zip((n, h, w), self.min, self.max))

    def as_dict(self) -> dict[str, list[int] | int]:
        """The profile for the cache key (``channels`` only where not 3: keys of 3-channel
        engines stay as they were)."""
        d: dict[str, list[int] | int] = {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}
        return d if self.channels == 3 else {**d, "channels": self.channels}


@dataclass(frozen=True)
class BuildOptions:
    precision: str  # 'fp32', 'fp16' (strongly typed FP16 ONNX) or 'fp16-flag'
    profile: Profile
    target: Target
    input_name: str = "input"
    timing_cache: Path | None = None
    workspace_bytes: int = WORKSPACE_BYTES


def _progress_monitor(info: TrtInfo) -> Any:
    """An IProgressMonitor that logs top-level build phases (None if unsupported)."""
    if not info.progress_monitor:
        return None

    class LogProgress(info.trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            info.trt.IProgressMonitor.__init__(self)
            self.started: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.started[phase_name] = time.perf_counter()
            if not parent_phase:
                log.info("engine build: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            t0 = self.started.pop(phase_name, None)
            if t0 is not None:
                log.debug("engine build: %s done in %.1f s", phase_name, time.perf_counter() - t0)

    return LogProgress()


def _network(info: TrtInfo, builder: Any, onnx_path: Path) -> tuple[Any, Any]:
    """Parse the ONNX into a (strongly typed where possible) network; keep the parser
    alive with it (the network borrows its weights)."""
    trt = info.trt
    flags = 0
    if info.strongly_typed_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger(info))
    ok = parser.parse_from_file(str(onnx_path))
    if not ok:
        msgs = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger(info).take_errors()
        raise BackendError(f"{info.flavour} cannot parse {onnx_path.name}: " + "; ".join(msgs[:3]))
    if network.num_inputs == 0 or network.num_outputs == 0:  # junk bytes can parse as an empty model
        raise BackendError(f"{info.flavour} cannot parse {onnx_path.name}: the graph has no inputs or "
                           "outputs (not an ONNX model?)")
    return network, parser


def _configure(info: TrtInfo, builder: Any, network: Any, opts: BuildOptions) -> Any:
    trt = info.trt
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_bytes)
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if names != [opts.input_name]:
        raise BackendError(f"the ONNX has inputs {names}; expected one named {opts.input_name!r}")
    profile = builder.create_optimization_profile()
    profile.set_shape(opts.input_name, *opts.profile.shapes())
    config.add_optimization_profile(profile)
    if opts.precision == "fp16-flag":
        if not info.fp16_flag:
            raise BackendError(f"{info.flavour} {info.version} has no FP16 builder flag; build the FP16 ONNX")
        config.set_flag(trt.BuilderFlag.FP16)
    if info.compute_capability_api and opts.target.ccs:
        config.num_compute_capabilities = len(opts.target.ccs)
        for i, cc in enumerate(opts.target.ccs):
            config.set_compute_capability(cc_enum(info, cc), i)
    monitor = _progress_monitor(info)
    if monitor is not None:
        config.progress_monitor = monitor
    return config


def _load_timing_cache(info: TrtInfo, config: Any, path: Path | None) -> Any:
    if path is None or not info.timing_cache:
        return None
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if not config.set_timing_cache(cache, False):
        log.warning("timing cache %s does not match this TensorRT/GPU; starting a new one", path.name)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def _save_timing_cache(config: Any, path: Path | None, cache: Any) -> None:
    if path is None or cache is None:
        return
    data = bytes(memoryview(config.get_timing_cache().serialize()))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_plan(info: TrtInfo, onnx_path: Path, opts: BuildOptions) -> bytes:
    """Build and serialise an engine; raises BackendError quoting TensorRT's errors."""
    t0 = time.perf_counter()
    trt_logger = logger(info)
    trt_logger.take_errors()
    builder = info.trt.Builder(trt_logger)
    network, _parser = _network(info, builder, onnx_path)
    config = _configure(info, builder, network, opts)
    cache = _load_timing_cache(info, config, opts.timing_cache)
    log.info("building %s %s engine from %s for %s, profile %s (%s)", info.flavour, opts.precision,
             onnx_path.name, opts.target.tag, opts.profile.tag, "can take minutes on big models")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        errs = trt_logger.take_errors()
        raise BackendError(f"{info.flavour} failed to build {onnx_path.name}: "
                           + ("; ".join(errs[-3:]) or "no message"))
    _save_timing_cache(config, opts.timing_cache, cache)
    data = bytes(memoryview(plan))
    log.info("built engine in %.1f s (%.1f MB)", time.perf_counter() - t0, len(data) / 1e6)
    return data
