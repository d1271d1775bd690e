"""The pipeline stages every run composes: decode -> infer -> (smooth) -> (download) -> sink.

Files (:mod:`.derain`), live streams (:mod:`.live`) and the benchmark (:mod:`.bench`)
build their pipelines from these classes; they take plain arguments (a backend, a
batch size, a smoother), never a front door's config.

- :class:`DecodeStage`: the source, over any iterator of :class:`FrameItem` (a
  :class:`~.io.video.VideoReader`, a live source);
- :class:`InferStage`: batches frames through the backend; with ``max_latency_s``
  (live) it skips a frame that would leave inference older than the bound while a
  newer one waits; files never drop a frame. A multi-frame model (``model.frames`` K >
  1) gets each frame with its neighbours through a :class:`~.window.FrameWindow`
  (``mode`` ``centred`` or ``causal``), copied packets held in their place; a model
  with ``align == "flow"`` gets each window's neighbours warped onto its target first
  (:func:`~.window.align_slots`, on the host);
- :class:`DeviceInferStage`: the same on a backend that takes device tensors
  (``infer_tensor``: TensorRT, torch on CUDA): frames go to the device once and stay
  there (a 3xHxW uint8 tensor in ``FrameItem.image``) until :class:`DownloadStage`;
  a neighbour reuses the frame already uploaded (with alignment: the flows are
  computed on the host, the neighbours warped on the device);
- :class:`SmoothStage`: the temporal smoother (numpy, or torch on the device);
- :class:`EncodeStage`: the file sink (a :class:`~.io.video.VideoWriter`).

:func:`frame_stages` adds infer, smooth and download after a queue;
:func:`file_pipeline` is the whole decode-to-encode pipeline of a file. torch is
imported lazily: only the device stages need it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .backends.base import Backend, model_frames, pad_amounts, pad_tensor
from .errors import require
from .io.video import FrameItem, VideoReader, VideoWriter
from .pipeline import IterSource, Pipeline, Stage
from .smooth import make_smoother  # the one smoother factory (CPU or torch, by device)
from .smooth.core import DEFAULT_STRENGTH
from .torch_warp import TorchWarp
from .window import FrameWindow, WindowFrame, slot_flows, stack_slots

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (frames done, frames expected or 0)
Windows = list[tuple[WindowFrame, ...]]  # each frame's slot frames (multi-frame models)
QUEUE_SIZE = 8  # frames between two file stages (a full queue blocks the stage before it)
MIN_SMOOTH_SIDE = 64  # the smoother's DIS flow runs at 1/4 size and crashes below 16 px a side


def uses_device_frames(backend: Backend, requested: bool | None = None) -> bool:
    """Keep frames on the backend's device? ``requested`` wins; None: when the backend
    takes device tensors (``capabilities.device_tensors``) and its device is a CUDA GPU."""
    if requested is not None:
        return requested
    return backend.capabilities.device_tensors and str(backend.device).startswith("cuda")


def smoother_device(backend: Backend) -> str:
    """Where the smoother of the device path runs: the backend's device ('torch-cpu' for CPU)."""
    return backend.device if backend.device != "cpu" else "torch-cpu"


def frame_size(image: Any) -> tuple[int, int]:
    """(h, w) of an HxWx3 array or a 3xHxW tensor."""
    shape = tuple(image.shape)
    return (shape[1], shape[2]) if shape[0] == 3 and shape[-1] != 3 else (shape[0], shape[1])


class DecodeStage(IterSource):
    """The source stage: the items of ``items()`` (frames, copied packets) into ``outq``;
    setting ``end`` ends the stream cleanly, ``close`` runs when the stage ends."""

    def __init__(self, stop: threading.Event, end: threading.Event, outq: queue.Queue,
                 items: Callable[[], Any], close: Callable[[], None] | None = None) -> None:
        super().__init__("decode", stop, end, outq, items, close)


class InferStage(Stage):
    """Batches frames (up to ``batch``, without waiting for a full batch) through the
    backend; copied packets pass straight on. ``keep_input`` keeps each input frame as
    ``item.rainy`` (the smoother needs it).

    ``max_latency_s`` (live streams; None for files, which never drop a frame): a frame
    older than the bound plus the recent inference time is skipped while a newer one
    waits, counted in ``dropped_late``; its discontinuity mark goes to the next frame
    kept. ``delay_s`` is a test/benchmark hook: a real sleep per frame inferred, to
    emulate a backend slower than the camera.

    A multi-frame model (``backend.model.frames`` > 1) reads each frame with the
    neighbours of window ``mode`` (``centred``: later frames too, so a frame waits for
    its look-ahead; ``causal``: earlier ones only) through :attr:`window`; packets then
    keep their place among the frames, and a frame skipped for latency is a cut of the
    window (a gap in ``index``). If its manifest says ``"align": "flow"`` (:attr:`align`),
    each window's neighbours are warped onto the target before the network, inside
    :meth:`infer_entries` (so the benchmark's infer timing includes it)."""

    def __init__(self, stop: threading.Event, inq: queue.Queue, outq: queue.Queue, backend: Backend,
                 batch: int = 1, keep_input: bool = True, max_latency_s: float | None = None,
                 delay_s: float = 0.0, mode: str = "centred") -> None:
        super().__init__("infer", stop, inq, outq)
        self.backend, self.batch, self.keep_input = backend, max(batch, 1), keep_input
        self.max_latency_s, self.delay_s = max_latency_s, delay_s
        self.pending: list[Any] = []  # FrameItems; with a window, Ready entries (packets too)
        self.dropped_late = 0
        self.infer_s = 0.0  # moving average of one batch's inference, seconds
        self._discontinuity = False
        self.mode = mode
        self.window = FrameWindow(backend.model.window(mode)) if model_frames(backend) > 1 else None
        align = getattr(backend.model, "align", "none") if self.window is not None else "none"
        self.align = None if align == "none" else align  # the flow mode, or None

    def late(self, item: FrameItem) -> bool:
        """Skip ``item`` under the latency policy? (Hands its discontinuity on if so.)"""
        if self.max_latency_s is None:
            return False
        age = time.monotonic() - item.captured + self.infer_s
        if age > self.max_latency_s and not self.inq.empty():
            self.dropped_late += 1
            self._discontinuity |= item.discontinuity  # handed on to the next frame kept
            return True
        item.discontinuity, self._discontinuity = item.discontinuity or self._discontinuity, False
        return False

    def admit(self, items: Iterable[Any], end: bool = False) -> list[Any]:
        """Items in stream order -> the entries ready to infer: the items themselves for
        a single-frame model, else the :class:`~.window.Ready` entries the window
        releases (with ``end``: all it holds)."""
        if self.window is None:
            return list(items)
        out = [r for it in items for r in self.window.push(it)]
        return out + self.window.flush() if end else out

    def infer_entries(self, entries: list[Any]) -> list[Any]:
        """Derain the frames of ``entries`` (from :meth:`admit`) in place, in same-size
        batches of at most ``batch``; returns the items in order."""
        if self.window is None:
            frames, windows, items = entries, None, entries
        else:
            ready = [e for e in entries if e.is_frame]
            frames, windows = [e.item for e in ready], [e.slots for e in ready]
            items = [e.item for e in entries]
        if not frames:
            return items
        t0 = time.monotonic()
        if self.delay_s > 0:  # test/benchmark hook: a slower backend
            self.stop.wait(self.delay_s * len(frames))
        for run in self._groups(frames):
            self.infer_group([frames[i] for i in run], None if windows is None else [windows[i] for i in run])
        took = time.monotonic() - t0
        self.infer_s = took if self.infer_s == 0.0 else 0.8 * self.infer_s + 0.2 * took
        return items

    def _groups(self, frames: list[FrameItem]) -> list[list[int]]:
        """Indices of runs of same-size frames, at most ``batch`` long."""
        groups: list[list[int]] = []
        for i, it in enumerate(frames):
            last = groups[-1] if groups else None
            if last and len(last) < self.batch and frames[last[0]].image.shape == it.image.shape:
                last.append(i)
            else:
                groups.append([i])
        return groups

    def _flush(self) -> list[Any]:
        entries, self.pending = self.pending, []
        return self.infer_entries(entries)

    def infer_group(self, group: list[FrameItem], windows: Windows | None = None) -> None:
        """Derain a batch of same-size frames in place (HxWx3 uint8 on the host);
        ``windows``: each frame's slot frames (multi-frame models)."""
        x = np.stack([it.image for it in group]) if windows is None else stack_slots(windows, self.align)
        out = self.backend.infer(x)
        for it, img in zip(group, out):
            it.rainy = it.image if self.keep_input else None
            it.image = img

    def work(self, item: Any) -> list[Any]:
        frame = isinstance(item, FrameItem)
        if self.window is None and not frame:
            return [item]
        if frame and self.late(item):
            return []
        self.pending.extend(self.admit([item]))
        frames = len(self.pending) if self.window is None else sum(e.is_frame for e in self.pending)
        if frames >= self.batch or self.inq.empty() or not frames:  # no frame: packets released by the window
            return self._flush()
        return []

    def finish(self) -> list[Any]:
        if self.window is not None:
            self.pending.extend(self.window.flush())
        return self._flush()


class DeviceInferStage(InferStage):
    """Uploads each batch of HxWx3 uint8 frames once, pads to the model's multiple,
    runs ``backend.infer_tensor`` and passes 3xHxW uint8 device tensors on. A
    multi-frame model's windows are stacked on the device from frames uploaded once
    (:attr:`.window.WindowFrame.cache`); with :attr:`align`, the flows are computed on
    the host (:func:`.window.slot_flows`, at the flow's reduced size) and the neighbours
    warped on the device (:class:`.torch_warp.TorchWarp`), so a frame still goes up once."""

    def __init__(self, stop: threading.Event, inq: queue.Queue, outq: queue.Queue, backend: Backend,
                 batch: int = 1, keep_input: bool = True, max_latency_s: float | None = None,
                 delay_s: float = 0.0, mode: str = "centred") -> None:
        super().__init__(stop, inq, outq, backend, batch, keep_input, max_latency_s, delay_s, mode)
        self.torch = require("torch", "train")
        self.device = self.torch.device(backend.device)
        self.uploads = 0  # frames copied to the device (each once)
        self.warper = TorchWarp(self.torch, self.device)

    def upload(self, images: list[Any] | np.ndarray) -> Any:
        """N HxWxC uint8 frames (or windows, C = 3K) -> NxCxHxW uint8 on the device (one
        host-to-device copy)."""
        host = self.torch.from_numpy(images if isinstance(images, np.ndarray) else np.stack(images))
        if self.device.type == "cuda":
            host = host.pin_memory()
        self.uploads += host.shape[0] * (host.shape[3] // 3)
        return host.to(self.device, non_blocking=True).permute(0, 3, 1, 2)

    def gather(self, windows: Windows) -> Any:
        """N windows -> Nx3KxHxW uint8 on the device; frames not yet there go up in one
        copy and stay in their :attr:`~.window.WindowFrame.cache` for later windows."""
        missing = list({id(f): f for slots in windows for f in slots if f.cache is None}.values())
        if missing:
            for frame, tensor in zip(missing, self.upload([f.image for f in missing])):
                frame.cache = tensor
        torch = self.torch
        return torch.stack([torch.cat([f.cache for f in slots]) for slots in windows])

    def inputs(self, group: list[FrameItem], windows: Windows | None) -> tuple[Any, list[Any]]:
        """(Nx3KxHxW uint8 on the device, each frame's own input (slot 0) as a 3xHxW device
        tensor: what ``rainy`` keeps for the smoother)."""
        if windows is None:
            x = self.upload([it.image for it in group])
            return x, list(x)
        x = self.gather(windows)
        if self.align:
            self.warp_neighbours(x, windows)
        return x, [slots[0].cache for slots in windows]

    def warp_neighbours(self, x: Any, windows: Windows) -> None:
        """Warp each window's neighbours in ``x`` (Nx3KxHxW uint8 on the device) onto its
        target, in place, by the flows the host computes (:func:`.window.slot_flows`)."""
        torch = self.torch
        for i, slots in enumerate(windows):
            for j, flow in enumerate(slot_flows(slots, self.align)):
                if flow is None:
                    continue
                f = torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1))).to(self.device)[None]
                warped = self.warper.warp(x[i:i + 1, 3 * j:3 * j + 3].float(), f)
                x[i, 3 * j:3 * j + 3] = warped[0].round_().clamp_(0, 255).to(torch.uint8)

    def infer_group(self, group: list[FrameItem], windows: Windows | None = None) -> None:
        x, targets = self.inputs(group, windows)
        h, w = x.shape[2:]
        ph, pw = pad_amounts(h, w, self.backend.model.multiple)
        xf = x.float().mul_(1.0 / 255.0)
        xp = pad_tensor(xf, ph, pw)
        with self.torch.inference_mode():
            y = self.backend.infer_tensor(xp)[:, :, :h, :w].float()
            # 8-bit frames on the device from here on, as on the host path (and 4x less memory)
            y = y.mul_(255.0).round_().clamp_(0, 255).to(self.torch.uint8)
        for i, it in enumerate(group):
            it.rainy = targets[i] if self.keep_input else None
            it.image = y[i]


class SmoothStage(Stage):
    """Runs the temporal smoother; frames under :data:`MIN_SMOOTH_SIDE` pixels a side
    pass unsmoothed (with one warning): its optical flow cannot work on them."""

    def __init__(self, stop: threading.Event, inq: queue.Queue, outq: queue.Queue, smoother: Any) -> None:
        super().__init__("smooth", stop, inq, outq)
        self.smoother = smoother
        self.warned = False

    def too_small(self, image: Any) -> bool:
        h, w = frame_size(image)
        if min(h, w) >= MIN_SMOOTH_SIDE:
            return False
        if not self.warned:
            log.warning("frames of %dx%d are too small for the temporal smoother (it needs %d px a side): "
                        "not smoothed", w, h, MIN_SMOOTH_SIDE)
            self.warned = True
        return True

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem):
            if item.discontinuity:
                self.smoother.reset()
            if not self.too_small(item.image):
                item.image = self.smoother(item.image, item.rainy)
            item.rainy = None
        return [item]


class DownloadStage(Stage):
    """3xHxW device tensors (uint8, or float in [0, 1]) -> HxWx3 uint8 numpy for the sink."""

    def __init__(self, stop: threading.Event, inq: queue.Queue, outq: queue.Queue) -> None:
        super().__init__("download", stop, inq, outq)
        self.torch = require("torch", "train")

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem) and isinstance(item.image, self.torch.Tensor):
            t = item.image
            if t.dtype != self.torch.uint8:
                t = t.mul(255.0).round_().clamp_(0, 255).to(self.torch.uint8)
            item.image = t.permute(1, 2, 0).contiguous().cpu().numpy()
            item.rainy = None
        return [item]


class EncodeStage(Stage):
    """The file sink: frames and copied packets into a :class:`VideoWriter` (closed at the end)."""

    def __init__(self, stop: threading.Event, inq: queue.Queue, writer: VideoWriter, total: int = 0,
                 progress: Progress | None = None) -> None:
        super().__init__("encode", stop, inq, None)
        self.writer, self.total, self.progress = writer, total, progress

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem):
            self.writer.write_frame(item)
            if self.progress:
                self.progress(self.writer.frames, self.total)
            return [None]
        self.writer.write_packet(item)
        return []

    def close(self) -> None:
        self.writer.close()


def frame_stages(p: Pipeline, inq: queue.Queue, backend: Backend, *, batch: int = 1, smooth: bool = True,
                 strength: float = DEFAULT_STRENGTH, device_frames: bool = False,
                 queue_size: int = QUEUE_SIZE, keep_input: bool | None = None,
                 max_latency_s: float | None = None, delay_s: float = 0.0,
                 smoother_factory: Callable[..., Any] | None = None,
                 mode: str = "centred") -> tuple[queue.Queue, InferStage]:
    """Add infer (and smooth) stages after ``inq``; returns the queue the sink reads (HxWx3
    uint8 frames on the host) and the infer stage. With ``device_frames`` the frames stay
    on the backend's device until a download stage. ``keep_input`` (default: ``smooth``)
    keeps the input frame as ``item.rainy``; ``smoother_factory(strength[, device])``
    replaces :func:`make_smoother`; ``mode``: the window of a multi-frame model
    (``centred`` or ``causal``, see :class:`InferStage`)."""
    def q() -> queue.Queue:
        return queue.Queue(queue_size)

    factory = smoother_factory or make_smoother
    keep = smooth if keep_input is None else keep_input
    out = q()
    kind = DeviceInferStage if device_frames else InferStage
    infer = kind(p.stop, inq, out, backend, batch, keep, max_latency_s, delay_s, mode)
    p.add(infer)
    if smooth:
        inq, out = out, q()
        smoother = factory(strength, smoother_device(backend)) if device_frames else factory(strength)
        p.add(SmoothStage(p.stop, inq, out, smoother))
    if device_frames:
        inq, out = out, q()
        p.add(DownloadStage(p.stop, inq, out))
    return out, infer


def file_pipeline(reader: VideoReader, writer: VideoWriter, backend: Backend, *, total: int = 0,
                  progress: Progress | None = None, queue_size: int = QUEUE_SIZE,
                  **frame_options: Any) -> Pipeline:
    """decode (``reader``) -> :func:`frame_stages` (``frame_options``) -> encode (``writer``).
    The reader stays open until the encoder is done (copied packets refer to its
    streams): the caller closes it after :meth:`Pipeline.run`."""
    p = Pipeline()
    decoded: queue.Queue = queue.Queue(queue_size)
    p.add(DecodeStage(p.stop, p.source_stop, decoded, reader.items))
    to_encode, _ = frame_stages(p, decoded, backend, queue_size=queue_size, **frame_options)
    p.add(EncodeStage(p.stop, to_encode, writer, total, progress))
    return p
