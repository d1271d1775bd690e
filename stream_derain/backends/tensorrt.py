"""TensorRT backend (tensorrt 10.x/11.x or TensorRT-RTX): cached engines, torch CUDA buffers.

``activate`` gets the engine from the cache (building it if needed; see
:mod:`stream_derain.trt`), deserialises it and creates an execution context. Device
buffers are torch CUDA tensors passed to TensorRT by address; no pycuda. ``run``
splits a batch into engine-sized chunks and keeps two in flight on three streams
(upload, compute, download) through pinned host buffers, so copies of one chunk
overlap inference of the other. :meth:`TensorRTBackend.infer_tensor` keeps frames on
the GPU for pipelines that decode there.

Frames larger than the engine's profile trigger one rebuild with a larger profile
(cached for next time); frames smaller than its minimum are padded (base.pad_mode) and cropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import ModelInfo
from ..errors import BackendError, MissingExtraError, require
from ..trt import probe
from ..trt.cache import EngineCache
from ..trt.engine import DEFAULT_HEIGHT, DEFAULT_MAX_BATCH, DEFAULT_WIDTH, EngineRequest, get_engine
from .base import Backend, Capabilities, pad_tensor

log = logging.getLogger(__name__)
NO_GPU = ("TensorRT needs an NVIDIA GPU to run engines; building works without one "
          "(stream-derain build-engine)")


@dataclass
class _Slot:
    """One in-flight chunk: pinned host buffers, the tensors still in use, its events."""

    host_in: Any = None
    host_out: Any = None
    keep: tuple[Any, ...] = ()
    done: Any = None  # CUDA event: download finished, everything of this slot is free
    pending: tuple[int, int] | None = None  # (start row in the output, rows)
    shape: tuple[int, ...] = field(default_factory=tuple)


class TensorRTBackend(Backend):
    name = "tensorrt"
    # engine shapes: a dynamic profile up to the built size, rebuilt beyond it (_fit_profile)
    capabilities = Capabilities(precisions=("fp32", "fp16"), device_tensors=True, dynamic_shapes=False)

    def __init__(self, model: ModelInfo, precision: str = "fp32", height: int | None = None,
                 width: int | None = None, max_batch: int = DEFAULT_MAX_BATCH,
                 compute_capability: str | None = None, cache_dir: Path | None = None,
                 workspace_mb: int | None = None) -> None:
        """``height`` x ``width``, ``max_batch``: the engine's shape profile (the largest
        frames and batch it takes); ``workspace_mb``: the builder's workspace (None: 1 GiB)."""
        super().__init__(model, precision)
        self.workspace_mb = workspace_mb
        self.height, self.width = height or DEFAULT_HEIGHT, width or DEFAULT_WIDTH
        self.max_batch = max_batch
        self.compute_capability = compute_capability
        self.cache_dir = cache_dir
        self.engine = self.context = self.runtime = None
        self.engine_path: Path | None = None
        self._slots: list[_Slot] = []

    @property
    def device(self) -> str:
        return "cuda"

    def describe(self) -> str:
        info = getattr(self, "_info", None)
        flavour = f", {info.flavour} {info.version}" if info else ""
        return f"{self.name} ({self.precision}, cuda{flavour})"

    # -- life cycle -------------------------------------------------------------------------

    def activate(self) -> None:
        if not probe.installed_flavours():  # before torch: the missing piece is TensorRT
            raise MissingExtraError("tensorrt or tensorrt_rtx", probe.EXTRAS)
        self._torch = require("torch", "train")  # CUDA buffers
        ok, why = probe.engine_support()
        if not ok:
            raise BackendError(NO_GPU if probe.gpu_info() is None else why)
        self._info = probe.load()
        self._load_engine(self.height, self.width)
        torch = self._torch
        self._streams = {k: torch.cuda.Stream() for k in ("h2d", "compute", "d2h")}
        self._slots = [_Slot(), _Slot()]

    def _load_engine(self, height: int, width: int) -> None:
        info, torch = self._info, self._torch
        self.runtime = info.trt.Runtime(probe.logger(info))
        req = EngineRequest(self.model, self.precision, height, width, self.max_batch, True,
                            self.compute_capability, self.workspace_mb)
        result, key = get_engine(req, EngineCache(self.cache_dir), load=self.runtime.deserialize_cuda_engine)
        self.engine, self.engine_path, self.profile = result.loaded, result.path, key.profile
        self.height, self.width = key.profile.max[1], key.profile.max[2]
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"cannot create an execution context for {result.path.name} (GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = info.trt.TensorIOMode
        self.in_name = next(n for n in names if self.engine.get_tensor_mode(n) == mode.INPUT)
        self.out_name = next(n for n in names if self.engine.get_tensor_mode(n) == mode.OUTPUT)
        dtypes = {info.trt.float16: torch.float16, info.trt.float32: torch.float32}
        self.in_dtype = dtypes[self.engine.get_tensor_dtype(self.in_name)]
        self.out_dtype = dtypes[self.engine.get_tensor_dtype(self.out_name)]
        log.info("TensorRT engine %s (%s I/O, profile %s)", result.path.name,
                 str(self.in_dtype).removeprefix("torch."), key.profile.tag)

    def deactivate(self) -> None:
        if self._slots and self._slots[0].done is not None:
            self._torch.cuda.synchronize()
        self._slots = []
        self.context = self.engine = self.runtime = None
        super().deactivate()

    def _fit_profile(self, h: int, w: int) -> None:
        """Rebuild (once, cached) with a larger profile when frames exceed the current one."""
        if h <= self.profile.max[1] and w <= self.profile.max[2]:
            return
        nh, nw = max(h, self.profile.max[1]), max(w, self.profile.max[2])
        log.warning("frames of %dx%d exceed the engine profile (max %dx%d); building one for %dx%d",
                    h, w, self.profile.max[1], self.profile.max[2], nh, nw)
        self._torch.cuda.synchronize()
        self.context = self.engine = None
        self._load_engine(nh, nw)

    # -- inference --------------------------------------------------------------------------

    def _enqueue(self, x: Any, stream: Any) -> Any:
        """Engine dtype Nx(3K)xHxW CUDA tensor (N <= max batch) -> Nx3xHxW output on ``stream``."""
        torch = self._torch
        n, _, h, w = x.shape
        ph, pw = max(0, self.profile.min[1] - h), max(0, self.profile.min[2] - w)
        x = pad_tensor(x, ph, pw).contiguous()
        if not self.context.set_input_shape(self.in_name, tuple(x.shape)):
            raise BackendError(f"input shape {tuple(x.shape)} is outside the engine profile "
                               f"{self.profile.tag}")
        out = torch.empty(tuple(self.context.get_tensor_shape(self.out_name)), dtype=self.out_dtype,
                          device=x.device)
        self.context.set_tensor_address(self.in_name, x.data_ptr())
        self.context.set_tensor_address(self.out_name, out.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError("TensorRT failed to enqueue the inference: " +
                               "; ".join(probe.logger(self._info).take_errors()[-2:]))
        x.record_stream(stream)
        return out[:, :, :h, :w] if (ph or pw) else out

    def infer_tensor(self, x: Any) -> Any:
        """Nx(3K)xHxW CUDA tensor in [0, 1] (H, W multiples of ``model.multiple``; K =
        ``model.frames``) -> the derained Nx3xHxW tensor, same dtype, on the current stream.
        No host copies."""
        torch = self._torch
        if not self.active:
            raise BackendError(f"{self.name} backend used before activate()")
        c = self.model.channels
        if not (isinstance(x, torch.Tensor) and x.is_cuda and x.ndim == 4 and x.shape[1] == c):
            raise BackendError(f"infer_tensor expects an Nx{c}xHxW CUDA tensor")
        self._fit_profile(x.shape[2], x.shape[3])
        stream = torch.cuda.current_stream(x.device)
        step = self.profile.max[0]
        outs = [self._enqueue(x[i:i + step].to(self.in_dtype), stream) for i in range(0, x.shape[0], step)]
        return (outs[0] if len(outs) == 1 else torch.cat(outs)).to(x.dtype)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Nx(3K)xHxW float32 -> Nx3xHxW float32, via pinned buffers and two chunks in flight."""
        self._fit_profile(x.shape[2], x.shape[3])
        out = np.empty((x.shape[0], 3, *x.shape[2:]), np.float32)
        step = self.profile.max[0]
        for i, start in enumerate(range(0, x.shape[0], step)):
            slot = self._slots[i % len(self._slots)]
            self._retire(slot, out)
            self._submit(slot, x[start:start + step], start)
        for slot in self._slots:
            self._retire(slot, out)
        return out

    def _pinned(self, buf: Any, shape: tuple[int, ...]) -> Any:
        numel = int(np.prod(shape))
        if buf is None or buf.numel() < numel:
            buf = self._torch.empty(numel, dtype=self._torch.float32, pin_memory=True)
        return buf

    def _submit(self, slot: _Slot, chunk: np.ndarray, start: int) -> None:
        """Upload on h2d, infer on compute, download on d2h; returns at once."""
        torch, s = self._torch, self._streams
        out_shape = (chunk.shape[0], 3, *chunk.shape[2:])
        slot.host_in = self._pinned(slot.host_in, chunk.shape)
        slot.host_out = self._pinned(slot.host_out, out_shape)
        host_in = slot.host_in[:chunk.size].view(chunk.shape)
        host_in.copy_(torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)))
        with torch.cuda.stream(s["h2d"]):
            dev_in = host_in.to("cuda", non_blocking=True)
            uploaded = torch.cuda.Event()
            uploaded.record()
        with torch.cuda.stream(s["compute"]):
            s["compute"].wait_event(uploaded)
            dev_in.record_stream(s["compute"])
            res = self._enqueue(dev_in.to(self.in_dtype), s["compute"]).float()
            computed = torch.cuda.Event()
            computed.record()
        with torch.cuda.stream(s["d2h"]):
            s["d2h"].wait_event(computed)
            res.record_stream(s["d2h"])
            slot.host_out[:res.numel()].view(out_shape).copy_(res, non_blocking=True)
            slot.done = torch.cuda.Event()
            slot.done.record()
        slot.keep, slot.pending, slot.shape = (dev_in, res), (start, chunk.shape[0]), out_shape

    def _retire(self, slot: _Slot, out: np.ndarray) -> None:
        """Wait for a slot's chunk and copy its result into ``out``."""
        if slot.pending is None:
            return
        slot.done.synchronize()
        start, rows = slot.pending
        size = int(np.prod(slot.shape))
        out[start:start + rows] = slot.host_out[:size].view(slot.shape).numpy()
        slot.keep, slot.pending = (), None
