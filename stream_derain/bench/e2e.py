"""End-to-end mode: the full decode -> infer -> smooth -> encode pipeline on a real
file, and each of its stages alone on the same frames in the same run.

Both are the pipeline's own stage classes (:mod:`stream_derain.stages`): the pipeline
is :func:`~stream_derain.stages.file_pipeline`, as ``derain`` runs it, and each isolated
stage calls the same class's work on frames held in memory (wall clock,
:func:`time.perf_counter`):

- decode: :class:`~stream_derain.stages.DecodeStage` over a :class:`VideoReader`;
- infer: :class:`~stream_derain.stages.InferStage` batches (after untimed warm-up
  batches), or, where the pipeline keeps frames on the backend's device
  (``infer_tensor`` backends: TensorRT, torch on CUDA), :class:`~stream_derain.stages.DeviceInferStage`
  (upload, pad, engine); then "smooth" is the torch smoother on that device and a
  fifth stage, "download", brings the frames back for the encoder; device work is
  synchronised before each clock read;
- smooth: :class:`~stream_derain.stages.SmoothStage` over the (derained, rainy) pairs;
- encode: :class:`~stream_derain.stages.EncodeStage` writing to a temporary file
  (including the final flush, which is where x264 emits its look-ahead frames).

What the numbers mean (efficiency, CPU-bound ceiling, overlap, diagnosis) is
:mod:`.efficiency`."""

from __future__ import annotations

import dataclasses
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ..backends.base import Backend
from ..devices import cuda_torch
from ..io.encode_options import preset_of
from ..io.video import EncodeOptions, FrameItem, VideoReader, VideoWriter
from ..smooth.core import DEFAULT_STRENGTH
from ..stages import (
    QUEUE_SIZE,
    DecodeStage,
    DeviceInferStage,
    DownloadStage,
    EncodeStage,
    InferStage,
    SmoothStage,
    file_pipeline,
    make_smoother,
    smoother_device,
    uses_device_frames,
)
from .efficiency import pipeline_efficiency
from .engine import error_reason
from .memory import MemoryProbe
from .timing import Clock, SystemClock, run_in_worker, usable_cores

log = logging.getLogger(__name__)
STAGES = ("decode", "infer", "smooth", "encode")  # plus "download" on the device-frame path


def _stage(frames: int, clock: Clock) -> dict[str, Any]:
    seconds = clock.seconds
    fps = frames / seconds if seconds > 0 else 0.0
    return {"status": "ok", "reason": None, "frames": frames, "seconds": round(seconds, 4),
            "fps": round(fps, 3), "cpu_s": round(clock.cpu_s, 4),
            "cpu_ms_per_frame": round(1000 * clock.cpu_s / frames, 3) if frames else None}


def device_sync(backend: Backend) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` for a backend on a CUDA device torch can see, else None."""
    torch = cuda_torch(str(backend.device))
    return torch.cuda.synchronize if torch is not None else None


def _bare(stage_cls: type, *args: Any) -> Any:
    """A pipeline stage outside a pipeline: its work is called directly, on this thread."""
    return stage_cls(threading.Event(), queue.Queue(), queue.Queue(), *args)


def decode_only(path: Path, frames: int | None) -> tuple[dict[str, Any], list[FrameItem], Any]:
    """The decode stage over the file (at most ``frames`` frames), into memory; also
    returns its VideoInfo."""
    with Clock() as clock:
        reader = VideoReader(path, 0, frames)
        try:
            stage = DecodeStage(threading.Event(), threading.Event(), queue.Queue(), reader.items)
            items = [it for it in stage.produce() if isinstance(it, FrameItem)]
        finally:
            reader.close()
    return _stage(len(items), clock), items, reader.info


def infer_only(backend: Backend, items: list[FrameItem], batch: int, keep_input: bool, on_device: bool,
               warmup: int = 2) -> tuple[dict[str, Any], list[FrameItem]]:
    """The pipeline's infer stage (:class:`InferStage`, or :class:`DeviceInferStage`:
    upload, pad, ``infer_tensor``, to uint8) over frames held in host memory, ``batch``
    at a time, after ``warmup`` untimed batches at this frame size (first-call
    allocations, lazy init). Returns copies of the items, derained (on the device:
    3xHxW tensors), with the input as ``rainy`` when ``keep_input``. A multi-frame
    model's frames go through the stage's window (centred, as files), timed with it."""
    stage = _bare(DeviceInferStage if on_device else InferStage, backend, batch, keep_input)
    for _ in range(max(warmup, 1)):
        stage.infer_entries(stage.admit([dataclasses.replace(it) for it in items[:batch]], end=True))
    out: list[FrameItem] = []
    with Clock(device_sync(backend)) as clock:
        for i in range(0, len(items), batch):
            group = [dataclasses.replace(it) for it in items[i:i + batch]]  # inferred in place
            out.extend(stage.infer_entries(stage.admit(group, end=i + batch >= len(items))))
    return _stage(len(items), clock), out


def smooth_only(smoother: Any, items: list[FrameItem], sync: Callable[[], None] | None = None
                ) -> tuple[dict[str, Any], list[FrameItem]]:
    """The pipeline's smooth stage over derained items in memory (``image`` and ``rainy``:
    numpy frames, or device tensors for the torch smoother); smooths them in place."""
    smoother.reset()
    stage = _bare(SmoothStage, smoother)
    with Clock(sync) as clock:
        out = [stage.work(it)[0] for it in items]
    return _stage(len(items), clock), out


def download_only(items: list[FrameItem], sync: Callable[[], None] | None = None
                  ) -> tuple[dict[str, Any], list[FrameItem]]:
    """The pipeline's download stage: 3xHxW device tensors -> HxWx3 uint8 numpy, in place."""
    stage = _bare(DownloadStage)
    with Clock(sync) as clock:
        out = [stage.work(it)[0] for it in items]
    return _stage(len(items), clock), out


def encode_only(items: list[FrameItem], info: Any, out: Path, opts: EncodeOptions) -> dict[str, Any]:
    """The pipeline's encode stage: the derained items (the source's timestamps) to ``out``."""
    writer = VideoWriter(out, dataclasses.replace(info, copy_streams=[]), opts)
    with Clock() as clock:
        stage = EncodeStage(threading.Event(), queue.Queue(), writer)
        try:
            for it in items:
                stage.work(it)
        finally:
            stage.close()
    return _stage(len(items), clock)


def _try_smoother(factory: Callable[..., Any], strength: float, device: str | None = None
                  ) -> tuple[Any, str | None]:
    try:
        return (factory(strength) if device is None else factory(strength, device)), None
    except Exception as exc:  # noqa: BLE001 - ImportError while smooth/ is being written, etc.
        return None, error_reason(exc)


def _busy_estimate(stats: dict[str, Any], seconds: float, source: bool, frames: int) -> dict[str, Any]:
    """Add ``busy_est_s`` and ``fps_in_pipeline`` (video frames per busy second) to a
    StageStats dict (whose ``items`` also count copied audio/subtitle packets).

    The source's ``busy_s`` times its generator and is exact. For ``work()`` stages,
    ``busy_s`` only covers iterating the list that ``work`` already returned, so the
    busy time is estimated as the stage's wall time minus its queue waits (its thread
    lives about as long as the pipeline); ``max`` keeps a correct ``busy_s`` if the
    stage ever measures it.
    """
    waits = stats["wait_in_s"] + stats["wait_out_s"]
    busy = stats["busy_s"] if source else max(stats["busy_s"], seconds - waits)
    stats["busy_est_s"] = round(busy, 4)
    stats["fps_in_pipeline"] = round(frames / busy, 3) if busy > 0 else None
    return stats


class ArrivalClock:
    """Progress callback of the encode stage: when each frame reached the encoder.

    The steady-state rate (frames between the first and the last arrival) leaves out
    the start-up (the first frame crossing every stage) and the drain after the last
    frame (x264 encodes the frames of its look-ahead window only when it is flushed),
    which weigh on a clip of a few seconds but not on a long video."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.times: list[float] = []

    def __call__(self, done: int, total: int) -> None:
        self.times.append(time.perf_counter())

    def as_dict(self, end: float) -> dict[str, Any]:
        t = self.times
        if len(t) < 2 or t[-1] <= t[0]:
            return {"steady_fps": None, "startup_s": None, "drain_s": None}
        return {"steady_fps": round((len(t) - 1) / (t[-1] - t[0]), 3), "startup_s": round(t[0] - self.t0, 4),
                "drain_s": round(end - t[-1], 4)}


def _run_pipeline(backend: Backend, path: Path, out: Path, frames: int | None, smooth: bool,
                  opts: EncodeOptions, device_frames: bool, **frame_options: Any) -> dict[str, Any]:
    """The whole file pipeline (:func:`stages.file_pipeline`, as ``derain`` runs it) on ``path``."""
    reader = VideoReader(path, 0, frames)
    try:
        writer = VideoWriter(out, reader.info, opts)
    except BaseException:
        reader.close()
        raise
    with MemoryProbe(backend.device) as mem, SystemClock(device_sync(backend)) as clock:
        arrivals = ArrivalClock()
        p = file_pipeline(reader, writer, backend, progress=arrivals, queue_size=QUEUE_SIZE, smooth=smooth,
                          device_frames=device_frames, **frame_options)
        try:
            res = p.run(lambda: writer.frames)
        finally:
            reader.close()
        end = time.perf_counter()
    stats = [_busy_estimate(s.as_dict(), res.seconds, i == 0, res.frames) for i, s in enumerate(res.stages)]
    busiest = max(stats[1:], key=lambda s: s["queue_mean"]) if len(stats) > 1 else None
    return {"frames": res.frames, "seconds": round(res.seconds, 4), "fps": round(res.fps, 3),
            **arrivals.as_dict(end),
            "smooth": smooth, "device_frames": device_frames, "queue_size": QUEUE_SIZE,
            **clock.as_dict(usable_cores()),
            "cpu_ms_per_frame": round(1000 * clock.cpu_s / res.frames, 3) if res.frames else None,
            "stages": stats,
            "frames_wait_before": busiest["name"] if busiest and busiest["queue_mean"] > 0 else None,
            **mem.as_dict()}


def run_e2e(backend: Backend, path: Path, frames: int | None, batch: int = 1, smooth: bool = True,
            strength: float = DEFAULT_STRENGTH, smoother_factory: Callable[..., Any] = make_smoother,
            opts: EncodeOptions | None = None, warmup: int = 2,
            device_frames: bool | None = None) -> dict[str, Any]:
    """Isolated stage throughputs and the full pipeline on ``path``; the backend must be active.

    ``device_frames`` as in :func:`stages.uses_device_frames` (None: on a CUDA backend
    that takes device tensors); the isolated stages follow the same path as the pipeline,
    and ``smoother_factory`` makes the smoother of both."""
    opts = opts or EncodeOptions()
    on_device = uses_device_frames(backend, device_frames)
    sync = device_sync(backend)
    stages: dict[str, dict[str, Any]] = {}
    stages["decode"], items, info = decode_only(path, frames)
    if not items:
        raise ValueError(f"no frames decoded from {path}")
    device = smoother_device(backend) if on_device else None
    smoother, why = (_try_smoother(smoother_factory, strength, device) if smooth
                     else (None, "disabled (--no-smooth)"))
    stages["infer"], derained = run_in_worker(
        partial(infer_only, backend, items, batch, smoother is not None, on_device, warmup))
    del items
    if smoother is not None:
        stages["smooth"], derained = run_in_worker(partial(smooth_only, smoother, derained, sync))
    else:
        stages["smooth"] = {"status": "unavailable" if smooth else "disabled", "reason": why, "fps": None}
        log.warning("smoother not measured and not in the pipeline: %s", why)
    if on_device:
        stages["download"], derained = download_only(derained, sync)
    with tempfile.TemporaryDirectory(prefix="stream-derain-bench-") as tmp:
        stages["encode"] = encode_only(derained, info, Path(tmp) / "encode.mp4", opts)
        del derained
        pipe = _run_pipeline(backend, path, Path(tmp) / "pipeline.mp4", frames, smoother is not None, opts,
                             on_device, batch=batch, strength=strength, smoother_factory=smoother_factory)
    summary = pipeline_efficiency(pipe["fps"], stages, usable_cores(), pipe)
    log.info("e2e %s: pipeline %.2f fps, bottleneck %s (%.2f fps), efficiency %s; %s", backend.describe(),
             pipe["fps"], summary["bottleneck"], summary["bottleneck_fps"] or 0, summary["efficiency"],
             summary["diagnosis"])
    encoder = {**dataclasses.asdict(opts), "preset": preset_of(opts.codec, opts)}  # the one it ran at
    return {"input": str(path), "width": info.width, "height": info.height, "batch": batch,
            "encoder": encoder, "stages": stages, "pipeline": pipe, **summary}
