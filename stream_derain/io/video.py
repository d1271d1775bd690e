"""Video files in and out with PyAV, keeping what users notice when tools lose it.

- timestamps: every frame keeps its source pts and time base (VFR stays VFR);
- colour: range, matrix, primaries and transfer are read from the source, used for
  the YUV<->RGB conversions both ways, and tagged on the output;
- rotation: the source's display matrix is copied to the output stream;
- other streams (audio, subtitles, data) are remuxed packet by packet, untouched;
- metadata: container and stream tags (title, creation_time, language, ...) are
  copied, as ffmpeg's ``-map_metadata 0`` does;
- damaged files: corrupt packets are skipped and counted, a file that ends early
  gives every frame the decoder still holds (it is flushed), and errors of PyAV on
  corrupt headers become :class:`InputError`.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..devices import nvidia_driver_present
from ..errors import InputError, OutputError
from .audio import AudioTranscoder, needs_transcode
from .encode import EncodeOptions
from .encoder import ColorInfo, VideoEncoder
from .paths import has_stream_scheme
from .tags import copyable_tags

__all__ = ["ColorInfo", "EncodeOptions", "FrameItem", "VideoInfo", "VideoReader", "VideoWriter"]

log = logging.getLogger(__name__)


@dataclass
class VideoInfo:
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None
    frames: int  # from the container; 0 when unknown
    codec: str
    pix_fmt: str
    color: ColorInfo
    rotation: float = 0.0
    copy_streams: list[Any] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)  # container tags
    stream_metadata: dict[str, str] = field(default_factory=dict)  # the video stream's tags


def _hwaccel(kind: str) -> Any:
    """PyAV decode acceleration for ``kind`` ('auto', 'cuda' or 'none'); None for software."""
    if kind == "none" or (kind == "auto" and not nvidia_driver_present()):
        return None
    from av.codec.hwaccel import HWAccel

    return HWAccel("cuda", allow_software_fallback=True)


def _open_input(path: Path, options: dict[str, str] | None, timeout: float | tuple | None,
                hwaccel: str = "auto") -> Any:
    if not has_stream_scheme(str(path)) and not Path(path).exists():
        raise InputError(f"input not found: {path}")
    accel = _hwaccel(hwaccel)
    if accel is not None:
        try:
            return av.open(str(path), options=options or {}, timeout=timeout, hwaccel=accel)
        except av.error.FFmpegError as exc:
            log.info("NVDEC decoding unavailable (%s): decoding on the CPU", exc.strerror or exc)
    try:
        return av.open(str(path), options=options or {}, timeout=timeout)
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}") from None


@dataclass
class FrameItem:
    """One decoded frame travelling through the pipeline (HxWx3 uint8 RGB)."""

    index: int
    pts: int | None
    time_base: Fraction | None
    image: np.ndarray
    rainy: np.ndarray | None = None  # the input frame, kept for the smoother
    duration: int | None = None  # in time_base ticks, from the source (keeps the last frame's length)
    discontinuity: bool = False  # set where the stream jumps (seek, reconnect, gap)
    captured: float = 0.0  # time.monotonic() at decode, for latency


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Decoded frame -> HxWx3 uint8 RGB using the frame's own matrix and range (files and
    live sources alike)."""
    return frame.to_ndarray(format="rgb24", src_colorspace=ColorInfo.of(frame).matrix,
                            src_color_range=frame.color_range or None)


class VideoReader:
    """Demuxes a file; yields FrameItems for the video stream and raw packets of the
    streams to copy. Corrupt packets are skipped with a warning and counted."""

    def __init__(self, path: Path | str, start: int = 0, max_frames: int | None = None,
                 copy_streams: bool = True, options: dict[str, str] | None = None,
                 timeout: float | tuple | None = None, hwaccel: str = "auto",
                 window: tuple[float, float | None] = (0.0, None)) -> None:
        """``start``/``max_frames``: a frame range; ``window``: (start, duration) in
        seconds from the start of the video stream (frames before it are decoded and
        dropped, as the copied packets before it)."""
        self.path, self.window = path, window
        self.container = _open_input(Path(path) if not isinstance(path, Path) else path, options, timeout,
                                     hwaccel)
        try:
            self._setup(copy_streams)
        except (AttributeError, UnicodeDecodeError, ValueError, av.error.FFmpegError) as exc:
            self.container.close()
            raise InputError(f"cannot read {path}: corrupt header ({type(exc).__name__}: {exc})") from None
        except InputError:
            self.container.close()
            raise
        self.start, self.max_frames = start, max_frames
        self.corrupt_packets = 0
        self._corrupt_seen, self._last_pts = 0, None

    def _setup(self, copy_streams: bool) -> None:
        path = self.path
        if not self.container.streams.video:
            raise InputError(f"no video stream in {path}")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "SLICE"  # frame threading loses frames around damaged packets
        cc = self.stream.codec_context
        copy = ([s for s in self.container.streams if s.type in ("audio", "subtitle", "data")]
                if copy_streams else [])
        self.info = VideoInfo(
            width=cc.width, height=cc.height, time_base=self.stream.time_base,
            rate=self.stream.average_rate or self.stream.guessed_rate, frames=self.stream.frames or 0,
            codec=cc.name, pix_fmt=cc.pix_fmt or "yuv420p", color=ColorInfo.of(cc), copy_streams=copy,
            metadata=copyable_tags(self.container), stream_metadata=copyable_tags(self.stream),
        )
        if self.info.width <= 0 or self.info.height <= 0:
            raise InputError(f"{path}: video stream has no frame size (corrupt header?)")

    def close(self) -> None:
        self.container.close()

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            return list(packet.decode())
        except av.error.InvalidDataError as exc:
            self.corrupt_packets += 1
            log.warning("skipping corrupt packet at pts %s: %s", packet.pts, exc.strerror or exc)
            return []

    def _jumped(self, frame: av.VideoFrame) -> bool:
        """Whether ``frame`` follows a skipped corrupt packet or a gap in timestamps of
        more than 3 nominal frame durations (a stream discontinuity for the smoother)."""
        jumped = self.corrupt_packets != self._corrupt_seen
        self._corrupt_seen = self.corrupt_packets
        rate, tb = self.info.rate, frame.time_base
        if frame.pts is not None and self._last_pts is not None and tb:
            nominal = 1 / (rate * tb) if rate else frame.duration
            if nominal and frame.pts - self._last_pts > 3 * nominal:
                log.info("timestamp gap of %.3f s before frame pts %d",
                         float((frame.pts - self._last_pts) * tb), frame.pts)
                jumped = True
        self._last_pts = frame.pts
        return jumped

    def _flush(self) -> list[av.VideoFrame]:
        """The frames the decoder still holds (its threads keep a few) after the input
        ended early."""
        try:
            return list(self.stream.codec_context.decode(None))
        except (av.error.FFmpegError, ValueError) as exc:
            log.debug("flushing the decoder: %s", exc)
            return []

    def _frames(self) -> Iterator[av.VideoFrame | av.Packet]:
        """Decoded frames and copied packets, in demux order; a damaged end stops the
        demuxer but the decoder is still drained."""
        streams = [self.stream, *self.info.copy_streams]
        decoded = 0
        try:
            for packet in self.container.demux(streams):
                if packet.stream is not self.stream:
                    if packet.dts is not None:
                        yield packet
                    continue
                for frame in self._decode(packet):
                    decoded += 1
                    yield frame
            return
        except av.error.EOFError:
            pass
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or exc
            if decoded == 0:
                raise InputError(f"cannot decode {self.path}: {why}") from None
            log.warning("input ends early after %d frames: %s", decoded, why)
        yield from self._flush()

    def _seconds(self, pts: int | None, tb: Fraction | None) -> float | None:
        if pts is None or not tb:
            return None
        s = self.stream
        origin = float(s.start_time * s.time_base) if s.start_time is not None and s.time_base else 0.0
        return float(pts * tb) - origin

    def _before(self, obj: Any) -> bool:
        """Whether a frame or packet lies before the time window."""
        t = self._seconds(obj.pts, obj.time_base) if self.window[0] else None
        return t is not None and t < self.window[0] - 1e-6

    def _after(self, frame: av.VideoFrame) -> bool:
        start, duration = self.window
        t = self._seconds(frame.pts, frame.time_base) if duration is not None else None
        return t is not None and t >= start + duration - 1e-6

    def items(self) -> Iterator[FrameItem | av.Packet]:
        """FrameItems (in decode order) and packets of the copied streams."""
        index = 0
        for frame in self._frames():
            if isinstance(frame, av.Packet):
                if index >= self.start and not self._before(frame):
                    yield frame
                continue
            if self._after(frame):
                return
            if self._before(frame):
                continue
            if index == 0:
                self.info.rotation = float(getattr(frame, "rotation", 0) or 0)
            jumped = self._jumped(frame)
            if index >= self.start:
                yield FrameItem(index, frame.pts, frame.time_base, to_rgb(frame),
                                duration=frame.duration or None, discontinuity=jumped)
            index += 1
            if self.max_frames is not None and index >= self.start + self.max_frames:
                return


class VideoWriter:
    """Encodes RGB frames with the source's timestamps and colour tags, and remuxes
    copied packets. ``close()`` always finalises the container (playable file)."""

    def __init__(self, path: Path, info: VideoInfo, opts: EncodeOptions, name: Path | None = None) -> None:
        """``name``: the path to name in messages (the output, when ``path`` is its
        temporary file)."""
        self.path, self.info = name or path, info
        try:
            self.container = av.open(str(path), "w", options=opts.container_options)
        except ValueError:
            raise OutputError(f"cannot write {self.path}: no container format for the extension "
                              f"{self.path.suffix or '(none)'!r}; use .mp4, .mkv, .mov or .webm") from None
        except (av.error.FFmpegError, OSError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise OutputError(f"cannot write {self.path}: {why}") from None
        try:
            self.encoder = VideoEncoder(self.container, opts, info.width, info.height,
                                        rate=info.rate or Fraction(25), time_base=info.time_base,
                                        source_pix_fmt=info.pix_fmt, color=info.color, name=str(self.path))
        except BaseException:
            self.container.close()
            raise
        self.stream = self.encoder.stream
        self.container.metadata.update(info.metadata)
        self.stream.metadata.update(info.stream_metadata)
        self.transcodes: dict[int, AudioTranscoder] = {}
        self.copies = self._copy_streams()
        self._last_pts: int | None = None
        self._last_step: int | None = None
        self._durations: dict[int, int] = {}  # pts -> source frame duration, applied to packets
        self._held: list[av.Packet] = []  # copied packets before the first frame (header not written)

    @property
    def frames(self) -> int:
        return self.encoder.frames

    def _copy_streams(self) -> dict[int, Any]:
        copies = {}
        for src in self.info.copy_streams:
            name = getattr(src.codec_context, "name", None) if src.codec_context is not None else None
            if src.type != "data" and name in (None, "none", "unknown"):
                log.warning("not copying %s stream #%d: unknown codec (damaged header?)", src.type, src.index)
                continue
            try:
                if needs_transcode(self.container, src):
                    self.transcodes[src.index] = AudioTranscoder(self.container, src)
                    self.transcodes[src.index].stream.metadata.update(copyable_tags(src))
                    continue
                copies[src.index] = self.container.add_stream_from_template(src)
            except (ValueError, AttributeError, UnicodeDecodeError, av.error.FFmpegError) as exc:
                log.warning("not copying %s stream #%d (%s): %s", src.type, src.index,
                            getattr(src.codec_context, "name", "?") if src.codec_context else "?", exc)
                continue
            copies[src.index].metadata.update(copyable_tags(src))
        return copies

    def _pts(self, item: FrameItem) -> int:
        """The source pts, kept as is; made strictly increasing if the source is broken."""
        pts = item.pts if item.pts is not None else (self._last_pts + 1 if self._last_pts is not None else 0)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def write_frame(self, item: FrameItem) -> None:
        if self.frames == 0:
            self.encoder.rotation = self.info.rotation  # known once the reader decoded a frame
        prev = self._last_pts
        pts = self._pts(item)
        if prev is not None:
            self._last_step = pts - prev
        duration = item.duration or self._last_step  # a source without durations: the last step
        if duration:
            self._durations[pts] = duration
        self._mux(self._with_durations(self.encoder.encode(item.image, pts, self.info.time_base)))
        if self._held:
            held, self._held = self._held, []
            for packet in held:
                self._route(packet)

    def _with_durations(self, packets: list[av.Packet]) -> list[av.Packet]:
        """Give each encoded packet its source frame's duration, so the last frame
        (and so the stream) lasts exactly as long as in the source."""
        for p in packets:
            d = self._durations.pop(p.pts, None) if p.pts is not None else None
            if d:
                p.duration = d
        return packets

    def write_packet(self, packet: av.Packet) -> None:
        """Remux a packet of a copied stream; held back until the first frame, so that
        the header (written by the first mux) has the video stream's side data."""
        if packet.stream.index in self.copies or packet.stream.index in self.transcodes:
            if self.frames == 0:
                self._held.append(packet)
            else:
                self._route(packet)

    def _route(self, packet: av.Packet) -> None:
        transcoder = self.transcodes.get(packet.stream.index)
        if transcoder is not None:
            self._mux(transcoder.packets(packet))
            return
        packet.stream = self.copies[packet.stream.index]
        self._mux([packet])

    def _mux(self, packets: Any) -> None:
        try:
            for p in packets:
                self.container.mux(p)
        except OSError as exc:
            raise self._output_error(exc) from None
        except (av.error.FFmpegError, ValueError) as exc:  # e.g. a header the muxer rejects
            raise OutputError(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}") from None

    def _output_error(self, exc: OSError) -> OutputError:
        if exc.errno == errno.ENOSPC:
            return OutputError(f"disk full while writing {self.path} ({self.frames} frames encoded)")
        return OutputError(f"cannot write {self.path}: {exc.strerror or exc}")

    def close(self) -> None:
        """Flush the encoder and write the trailer; safe to call twice."""
        if self.container is None:
            return
        try:
            self._mux(self._with_durations(self.encoder.flush()))
            held, self._held = (self._held if self.frames else []), []
            for packet in held:
                self._route(packet)
            for transcoder in self.transcodes.values():
                self._mux(transcoder.flush())
        finally:
            container, self.container = self.container, None
            try:
                container.close()
            except OSError as exc:
                raise self._output_error(exc) from None
