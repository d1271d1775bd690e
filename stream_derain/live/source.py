"""A live video source that reconnects by itself.

:class:`ReconnectingSource` opens an RTSP / HTTP(S) URL or a local camera device with
PyAV (TCP transport for RTSP by default, open and read timeouts), decodes the first
video stream to RGB :class:`~stream_derain.io.video.FrameItem`\\ s stamped with
``captured = time.monotonic()``, and when the stream drops (error, end of stream, or
a stall caught by the read timeout) reconnects with exponential backoff up to a cap.
The attempt counter is reset after a good reconnect (one that delivers a frame), and
the first frame after a reconnect carries ``discontinuity=True`` so that temporal
state downstream (the smoother) resets. Packets are never dropped here: only whole
decoded frames are dropped later, so a GOP is never corrupted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av

from ..errors import InputError
from ..io.paths import has_stream_scheme
from ..io.video import TAG_ERRORS, FrameItem, _hwaccel, to_rgb
from ..pipeline import RunControl

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SourceConfig:
    """How to open and keep open a live input.

    ``retries`` bounds the attempts to connect at start (a dead camera is an
    :class:`InputError` after them); ``reconnect_retries`` bounds consecutive failed
    reconnects after a drop (``None``: keep trying until stopped)."""

    url: str
    transport: str = "tcp"  # RTSP only: tcp or udp
    input_format: str | None = None  # e.g. "v4l2"; guessed for /dev/video*
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    retries: int = 3
    reconnect_retries: int | None = None
    backoff_s: float = 0.5  # first wait between attempts, doubled each time ...
    backoff_max_s: float = 10.0  # ... up to this cap
    hwaccel: str = "none"  # NVDEC decoding: auto, cuda or none (falls back to the CPU)

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "udp"):
            raise InputError(f"transport must be tcp or udp, got {self.transport!r}")
        if self.open_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise InputError("open and read timeouts must be > 0")
        if self.retries < 1:
            raise InputError(f"retries must be >= 1, got {self.retries}")
        if self.hwaccel not in ("auto", "cuda", "none"):
            raise InputError(f"--hwaccel must be auto, cuda or none, got {self.hwaccel!r}")

    @property
    def is_network(self) -> bool:
        return has_stream_scheme(self.url)

    def format_name(self) -> str | None:
        if self.input_format:
            return self.input_format
        return "v4l2" if self.url.startswith("/dev/video") else None

    def av_options(self) -> dict[str, str]:
        if self.url.lower().startswith(("rtsp:", "rtsps:")):
            return {"rtsp_transport": self.transport}
        return {}


def interruptible(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a worker thread, waited for in slices: in the main thread a blocking
    PyAV call would hold Ctrl-C / SIGTERM back until its timeout. If interrupted, the
    worker is left to finish on its own (daemon) and KeyboardInterrupt propagates."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="stream-derain-open", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in box:
        raise box["error"]
    return box["value"]


def backoff_delay(attempt: int, first: float, cap: float) -> float:
    """Seconds to wait before attempt ``attempt`` (1-based): first * 2**(attempt-1), capped."""
    return min(first * (2 ** max(attempt - 1, 0)), cap)


@dataclass
class SourceStats:
    """Counters a status line shows; updated by the source thread."""

    frames: int = 0
    drops: int = 0  # times the stream was lost after it had been up
    reconnects: int = 0  # successful reconnects
    failed_attempts: int = 0  # failed connection attempts, all in all
    connected: bool = False


class ReconnectingSource:
    """Iterate :meth:`frames` for decoded RGB frames until ``end`` is set.

    Call :meth:`connect` first to fail early on a dead camera (it raises
    :class:`InputError` after ``retries`` attempts). ``control``: the run's stop request
    (:class:`~stream_derain.pipeline.RunControl`): once set, an interrupted PyAV call is
    the user's Ctrl-C, not a timeout, and no new attempt starts."""

    def __init__(self, cfg: SourceConfig, end: threading.Event | None = None,
                 control: RunControl | None = None) -> None:
        self.cfg = cfg
        self.end = end or threading.Event()
        self.control = control if control is not None else RunControl()
        self.stats = SourceStats()
        self.container: Any = None
        self.width = self.height = 0
        self.fps = 25  # the stream's nominal rate, once connected
        self._index = 0
        self._streak = 0  # connection attempts in a row without a frame

    # --- connecting ---------------------------------------------------------
    def _open_once(self) -> Any:
        cfg = self.cfg
        timed_out = f"cannot open {cfg.url}: no answer within {cfg.open_timeout_s:g}s (timed out)"
        t0 = time.monotonic()
        try:
            accel = _hwaccel(cfg.hwaccel)
            extra = {"hwaccel": accel} if accel is not None else {}
            container = interruptible(lambda: av.open(cfg.url, format=cfg.format_name(),
                                                      options=cfg.av_options(), **extra,
                                                      metadata_errors=TAG_ERRORS,
                                                      timeout=(cfg.open_timeout_s, cfg.read_timeout_s)))
        except av.error.ExitError:  # PyAV's interrupt callback: a timeout, or Ctrl-C / SIGTERM
            if self.control.is_set():
                raise KeyboardInterrupt from None
            raise InputError(timed_out) from None
        except av.error.InvalidDataError:  # what a server that never answers gives at the timeout
            if time.monotonic() - t0 >= 0.9 * cfg.open_timeout_s:
                raise InputError(timed_out) from None
            raise InputError(f"cannot open {cfg.url}: invalid data (not a video stream?)") from None
        except (av.error.FFmpegError, OSError) as exc:
            raise InputError(f"cannot open {cfg.url}: {getattr(exc, 'strerror', None) or exc}") from None
        if not container.streams.video:
            container.close()
            raise InputError(f"no video stream in {cfg.url}")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # FFmpeg listed the stream but set up no codec
            container.close()
            raise InputError(f"cannot open {cfg.url}: its video stream has no usable codec")
        stream.thread_type = "AUTO"
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        self.fps = int(round(float(rate))) if rate and 1 <= float(rate) <= 240 else 25
        return container

    def _attempts(self, limit: int | None, what: str) -> Any:
        """Open with backoff; None when ``end`` was set; InputError after ``limit`` attempts
        in a row without a frame (the streak is reset by the first frame of a connection)."""
        while not self.end.is_set():
            if self._streak:
                self.end.wait(backoff_delay(self._streak, self.cfg.backoff_s, self.cfg.backoff_max_s))
                if self.end.is_set():
                    break
            self._streak += 1
            if self.control.is_set():
                raise KeyboardInterrupt
            try:
                container = self._open_once()
                log.debug("%s: opened %s (attempt %d)", what, self.cfg.url, self._streak)
                return container
            except InputError as exc:
                self.stats.failed_attempts += 1
                if limit is not None and self._streak >= limit:
                    raise InputError(f"{exc} (gave up after {self._streak} attempt(s))") from None
                delay = backoff_delay(self._streak, self.cfg.backoff_s, self.cfg.backoff_max_s)
                log.warning("%s failed (attempt %d): %s; retrying in %.1fs", what, self._streak, exc, delay)
        return None

    def connect(self) -> None:
        """Open the input at start; raises :class:`InputError` after the configured retries."""
        if self.container is None:
            self.container = self._attempts(self.cfg.retries, "connecting")
            self.stats.connected = self.container is not None
            if self.container is not None:
                log.info("connected to %s: %dx%d, %d fps", self.cfg.url, self.width, self.height, self.fps)

    def close(self) -> None:
        container, self.container = self.container, None
        self.stats.connected = False
        if container is not None:
            try:
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                log.debug("closing %s: %s", self.cfg.url, exc)

    # --- reading ------------------------------------------------------------
    def _decode(self, container: Any) -> Iterator[FrameItem]:
        """Frames of one connection; returns (or raises FFmpegError) when it drops."""
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as exc:
                log.debug("corrupt packet at pts %s: %s", packet.pts, exc)
                continue
            for frame in frames:
                item = FrameItem(self._index, frame.pts, frame.time_base, to_rgb(frame),
                                 captured=time.monotonic())
                self._index += 1
                yield item
            if self.end.is_set():
                return

    def frames(self) -> Iterator[FrameItem]:
        """Decoded frames across reconnects, until ``end`` is set (or reconnecting gives up)."""
        self.connect()
        try:
            while self.container is not None and not self.end.is_set():
                yield from self._one_connection()
                if self.end.is_set():
                    return
                self.close()
                self.container = self._attempts(self.cfg.reconnect_retries, "reconnecting")
                self.stats.connected = self.container is not None
                if self.container is not None:
                    self.stats.reconnects += 1
                    log.warning("reconnected to %s (reconnect #%d, attempt %d)", self.cfg.url,
                                self.stats.reconnects, self._streak)
        finally:
            self.close()

    def _one_connection(self) -> Iterator[FrameItem]:
        first, reason = self.stats.reconnects > 0 or self.stats.drops > 0, "end of stream"
        try:
            for item in self._decode(self.container):
                if first:
                    item.discontinuity, first = True, False
                self._streak = 0  # a good connection: the next drop starts a fresh streak
                self.stats.frames += 1
                yield item
        except av.error.FFmpegError as exc:
            reason = exc.strerror or str(exc)
            if isinstance(exc, av.error.ExitError):
                reason = f"no data for {self.cfg.read_timeout_s:g}s (stalled)"
        if not self.end.is_set():
            self.stats.drops += 1
            log.warning("stream dropped (#%d): %s: %s", self.stats.drops, self.cfg.url, reason)
