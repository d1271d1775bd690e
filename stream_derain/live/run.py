"""Derain a live stream: reconnecting source -> drop-oldest queue -> derain -> (smooth)
-> outputs (push, preview, segments), with bounded latency and a status callback.

The stages between source and outputs are the file path's (:func:`.stages.frame_stages`):
the same batching :class:`~stream_derain.stages.InferStage` and, on a backend that
takes device tensors, frames kept on the GPU until they are downloaded for the outputs.

Latency is bounded in two places, never by dropping packets (a GOP is never
corrupted): the queue between decode and inference keeps only the newest
``queue_size`` decoded frames (:class:`~stream_derain.pipeline.DropOldestQueue`), and
the inference stage skips a frame older than ``max_latency_s`` when a newer one is
already waiting. Latency is measured from decode (``FrameItem.captured``) to the
moment every output has taken the frame.

A multi-frame model reads each frame with its neighbours (:mod:`stream_derain.window`).
Live runs ``causal`` windows (earlier frames only: no added latency) unless the latency
bound leaves room for a ``centred`` one, which holds each frame back until its look-ahead has
arrived: ``window="auto"`` (the default) takes centred when the look-ahead's time at
the stream's frame rate plus twice one inference (timed once at start on a batch of
the stream's size: the frame's own batch and the one in flight) stays under
``max_latency_s`` (:func:`window_mode`); ``window`` ``centred`` or ``causal`` forces one.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import Backend, model_frames
from ..engine_spec import EngineSpec, open_engine
from ..errors import ConfigError, OutputError
from ..io.encode_options import EncodeOptions, check_options
from ..io.video import FrameItem
from ..pipeline import DropOldestQueue, Pipeline, RunControl, Stage
from ..stages import DecodeStage, InferStage, frame_stages, uses_device_frames
from .outputs import LIVE_ENCODE, Output, PreviewServer, PushOutput, SegmentRecorder
from .source import ReconnectingSource, SourceConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveConfig:
    """Everything :func:`run_live` needs: the stream, ``engine`` (backend, model,
    precision, batch, smoother, window ...: :class:`~stream_derain.engine_spec.EngineSpec`,
    as derain's; a batch never waits to fill, see :class:`~stream_derain.stages.InferStage`)
    and the outputs. ``infer_delay_s`` is a test/benchmark hook: a real sleep added to
    every inference, to emulate a backend slower than the camera."""

    source: SourceConfig
    engine: EngineSpec = field(default_factory=EngineSpec)
    max_latency_s: float = 1.0
    queue_size: int = 2  # decoded frames waiting for inference (oldest dropped)
    push: tuple[str, ...] = ()
    preview_port: int | None = None  # 0: any free port
    record_dir: Path | None = None
    segment_minutes: float = 10.0
    infer_delay_s: float = 0.0
    max_seconds: float | None = None
    max_frames: int | None = None
    status_every_s: float = 5.0
    encode: EncodeOptions = LIVE_ENCODE  # of --push and --record

    def __post_init__(self) -> None:
        if self.max_latency_s <= 0:
            raise ConfigError(f"max latency must be > 0, got {self.max_latency_s}")
        if self.queue_size < 1:
            raise ConfigError(f"queue size must be >= 1, got {self.queue_size}")
        if self.segment_minutes <= 0:
            raise ConfigError(f"segment length must be > 0 minutes, got {self.segment_minutes}")
        check_options(self.encode)
        if self.preview_port is not None and not 0 <= self.preview_port <= 65535:
            raise ConfigError(f"--preview-port {self.preview_port} is not a port number (1-65535)")


@dataclass
class LiveStats:
    """A snapshot of a live run (passed to ``status_cb`` and returned at the end)."""

    seconds: float = 0.0
    frames_in: int = 0  # decoded
    frames_out: int = 0  # taken by every output
    dropped_queue: int = 0  # dropped by the decode->inference queue (oldest first)
    dropped_late: int = 0  # skipped at inference: older than max_latency_s
    reconnects: int = 0
    stream_drops: int = 0
    connected: bool = False
    latency_s: float = 0.0  # capture -> output of the last frame
    latency_p95_s: float = 0.0  # over the last 100 frames
    latency_max_s: float = 0.0
    fps_in: float = 0.0  # over the last status interval
    fps_out: float = 0.0
    backend: str = ""
    outputs: tuple[str, ...] = ()
    segments: tuple[Path, ...] = ()
    interrupted: bool = False

    @property
    def dropped(self) -> int:
        return self.dropped_queue + self.dropped_late

    def as_dict(self) -> dict[str, Any]:
        """Every field and ``dropped`` (what the preview page shows)."""
        return {**asdict(self), "dropped": self.dropped}

    def line(self) -> str:
        return (f"in {self.fps_in:5.1f} fps  out {self.fps_out:5.1f} fps"
                f"  latency {self.latency_s * 1000:4.0f} ms (p95 {self.latency_p95_s * 1000:.0f})"
                f"  dropped {self.dropped}  reconnects {self.reconnects}"
                f"  {'connected' if self.connected else 'RECONNECTING'}  {self.backend}")


class OutputStage(Stage):
    """The sink: hands each frame to every output, measures latency, closes them all."""

    def __init__(self, stop: threading.Event, inq: queue.Queue, outputs: Sequence[Output],
                 on_frame: Callable[[FrameItem, float], None]) -> None:
        super().__init__("output", stop, inq, None)
        self.outputs, self.on_frame = list(outputs), on_frame

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem):
            for out in self.outputs:
                out.write(item)
            self.on_frame(item, time.monotonic() - item.captured)
        return []

    def close(self) -> None:
        first: BaseException | None = None
        for out in self.outputs:
            try:
                out.close()
            except Exception as exc:  # noqa: BLE001 - close every output, then report the first
                log.error("closing %s: %s", out.name, exc)
                first = first or exc
        if first is not None:
            raise first


class _Meter:
    """Counts frames out and latencies (written by the output thread, read by the monitor)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames = 0
        self.last = self.peak = 0.0
        self.recent: collections.deque[float] = collections.deque(maxlen=100)

    def __call__(self, item: FrameItem, latency: float) -> None:
        with self.lock:
            self.frames += 1
            self.last, self.peak = latency, max(self.peak, latency)
            self.recent.append(latency)

    def p95(self) -> float:
        with self.lock:
            vals = sorted(self.recent)
        return vals[min(int(len(vals) * 0.95), len(vals) - 1)] if vals else 0.0


def build_outputs(cfg: LiveConfig, fps: int) -> list[Output]:
    """The configured outputs; on a failure, the ones already made are closed."""
    outs: list[Output] = []
    try:
        outs.extend(PushOutput(url, fps, encode=cfg.encode) for url in cfg.push)
        if cfg.preview_port is not None:
            outs.append(PreviewServer(cfg.preview_port))
        if cfg.record_dir is not None:
            outs.append(SegmentRecorder(Path(cfg.record_dir), cfg.segment_minutes * 60.0, fps,
                                        encode=cfg.encode))
    except BaseException:
        for out in outs:
            out.close()
        raise
    return outs


@dataclass
class _Run:
    """The parts of one live run the monitor looks at."""

    cfg: LiveConfig
    pipeline: Pipeline
    source: ReconnectingSource
    dropq: DropOldestQueue
    infer: InferStage
    meter: _Meter
    outputs: list[Output]
    backend: str
    t0: float = field(default_factory=time.monotonic)
    _last: tuple[float, int, int] = (0.0, 0, 0)

    def snapshot(self) -> LiveStats:
        now = time.monotonic()
        s, m = self.source.stats, self.meter
        t, fin, fout = self._last or (self.t0, 0, 0)
        dt = max(now - (t or self.t0), 1e-6)
        self._last = (now, s.frames, m.frames)
        segs = next((tuple(o.files) for o in self.outputs if isinstance(o, SegmentRecorder)), ())
        return LiveStats(
            seconds=now - self.t0, frames_in=s.frames, frames_out=m.frames, dropped_queue=self.dropq.dropped,
            dropped_late=self.infer.dropped_late, reconnects=s.reconnects, stream_drops=s.drops,
            connected=s.connected, latency_s=m.last, latency_p95_s=m.p95(), latency_max_s=m.peak,
            fps_in=(s.frames - fin) / dt, fps_out=(m.frames - fout) / dt, backend=self.backend,
            outputs=tuple(o.name for o in self.outputs), segments=segs)

    def should_end(self) -> bool:
        cfg = self.cfg
        return ((cfg.max_seconds is not None and time.monotonic() - self.t0 >= cfg.max_seconds)
                or (cfg.max_frames is not None and self.meter.frames >= cfg.max_frames)
                or self.pipeline.stop.is_set())


def _monitor(run: _Run, done: threading.Event, stop_event: threading.Event | None,
             status_cb: Callable[[LiveStats], None] | None) -> None:
    """Ends the source on a stop request or a run limit; reports status every few seconds."""
    next_status = time.monotonic() + run.cfg.status_every_s
    while not done.wait(0.1):
        if (stop_event is not None and stop_event.is_set()) or run.should_end():
            run.pipeline.source_stop.set()
        if time.monotonic() >= next_status:
            next_status += run.cfg.status_every_s
            stats = run.snapshot()
            for out in run.outputs:
                if isinstance(out, PreviewServer):
                    out.publish(stats.as_dict())
            if status_cb is not None:
                status_cb(stats)
            else:
                log.info("live: %s", stats.line())


def window_mode(requested: str, lookahead: int, fps: float, max_latency_s: float, infer_s: float) -> str:
    """The window live runs: ``requested`` unless ``auto``; then ``centred`` when its
    ``lookahead`` frames at ``fps`` plus twice one inference (``infer_s``: the frame's own
    batch and the one in flight) fit in ``max_latency_s``, else ``causal``."""
    if requested != "auto":
        return requested
    fits = lookahead > 0 and lookahead / max(fps, 1e-6) + 2 * infer_s < max_latency_s
    return "centred" if fits else "causal"


def time_inference(backend: Backend, height: int, width: int, batch: int) -> float:
    """Seconds of one ``backend.infer`` of ``batch`` windows of ``height`` x ``width`` (the
    faster of two calls, the first one warming up)."""
    x = np.zeros((batch, max(height, 1), max(width, 1), 3 * model_frames(backend)), np.uint8)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        backend.infer(x)
        times.append(time.perf_counter() - t0)
    return min(times)


def live_window(cfg: LiveConfig, backend: Backend, source: ReconnectingSource) -> str:
    """:func:`window_mode` for this run (a single-frame model: ``causal``, which it ignores)."""
    if model_frames(backend) == 1:
        return "causal"
    lookahead = max(backend.model.window("centred"))
    infer_s, requested = 0.0, cfg.engine.window
    if requested == "auto" and lookahead > 0:
        infer_s = time_inference(backend, source.height, source.width, cfg.engine.batch)
    mode = window_mode(requested, lookahead, source.fps, cfg.max_latency_s, infer_s)
    log.info("%d-frame model: %s window (look-ahead %d frame(s) at %d fps, inference %.0f ms, "
             "latency bound %.2f s)", model_frames(backend), mode, lookahead if mode == "centred" else 0,
             source.fps, infer_s * 1000, cfg.max_latency_s)
    return mode


def _pipeline(cfg: LiveConfig, backend: Backend, source: ReconnectingSource, p: Pipeline,
              outputs: list[Output], meter: _Meter) -> tuple[DropOldestQueue, InferStage]:
    """decode -> drop-oldest queue -> the file path's frame stages (latency policy on,
    input kept as ``item.rainy``, small queues) -> outputs."""
    dropq = DropOldestQueue(cfg.queue_size)
    p.add(DecodeStage(p.stop, p.source_stop, dropq, source.frames, source.close))
    eng = cfg.engine
    on_device = uses_device_frames(backend, eng.device_frames)
    out, infer = frame_stages(p, dropq, backend, batch=eng.batch, smooth=eng.smooth,
                              strength=eng.smooth_strength, device_frames=on_device, queue_size=2,
                              keep_input=True, max_latency_s=cfg.max_latency_s, delay_s=cfg.infer_delay_s,
                              mode=live_window(cfg, backend, source))
    p.add(OutputStage(p.stop, out, outputs, meter))
    return dropq, infer


def run_live(cfg: LiveConfig, status_cb: Callable[[LiveStats], None] | None = None,
             stop_event: threading.Event | None = None, extra_outputs: Sequence[Output] = (),
             control: RunControl | None = None) -> LiveStats:
    """Derain ``cfg.source`` until ``stop_event`` is set, a run limit is reached, the
    source gives up, or the run is interrupted: ``control`` set (None: one of its own) or
    Ctrl-C (KeyboardInterrupt in the calling thread); then the frames in flight are
    finished, every output is closed cleanly and the stats say ``interrupted``. Raises
    :class:`InputError` when the input cannot be opened within the configured retries."""
    if not cfg.push and cfg.preview_port is None and cfg.record_dir is None and not extra_outputs:
        raise OutputError("no output: give --push, --preview-port and/or --record")
    control = control if control is not None else RunControl()
    p = Pipeline()
    source = ReconnectingSource(cfg.source, end=p.source_stop, control=control)
    with open_engine(cfg.engine, cfg.engine.resolve(use="live")) as backend:
        log.info("%s", backend.summary())
        source.connect()
        try:
            outputs = [*build_outputs(cfg, source.fps), *extra_outputs]
        except BaseException:
            source.close()
            raise
        meter = _Meter()
        dropq, infer = _pipeline(cfg, backend, source, p, outputs, meter)
        run = _Run(cfg, p, source, dropq, infer, meter, outputs, backend.describe())
        done = threading.Event()
        mon = threading.Thread(target=_monitor, args=(run, done, stop_event, status_cb),
                               name="stream-derain-monitor", daemon=True)
        mon.start()
        try:
            result = p.run(lambda: meter.frames, control)
        finally:
            done.set()
            mon.join(timeout=5.0)
        stats = run.snapshot()
        stats = replace(stats, interrupted=result.interrupted, connected=False,
                        fps_in=stats.frames_in / max(stats.seconds, 1e-6),
                        fps_out=stats.frames_out / max(stats.seconds, 1e-6))
        log.info("live run ended after %.1fs: %d frames in, %d out, %d dropped, %d reconnect(s)",
                 stats.seconds, stats.frames_in, stats.frames_out, stats.dropped, stats.reconnects)
        return stats
