"""Video files in and out with PyAV, keeping what users notice when tools lose it.

- timestamps: the output clock of :mod:`.clock` (the first frame at 0, every frame's
  distance from it kept: VFR stays VFR; frames without timestamps get the frame
  rate's);
- colour: range, matrix, primaries and transfer are read from the source, used for
  the YUV<->RGB conversions both ways, and tagged on the output;
- rotation (the display matrix), sample aspect ratio and field order are copied to the
  output stream; what cannot be kept (alpha, other video streams) is said in a warning;
- other streams (audio, subtitles, data) are remuxed packet by packet, untouched;
- metadata: container and stream tags (title, creation_time, language, ...) are
  copied, as ffmpeg's ``-map_metadata 0`` does;
- damaged files: corrupt packets are skipped and counted, a file that ends early
  gives every frame the decoder still holds (it is flushed), and errors of PyAV on
  corrupt headers become :class:`InputError`;
- names are paths: ``file:x.mp4`` is the file of that name, not a protocol
  (:func:`~.paths.av_name`); only the stream schemes of ``live`` open as URLs.

The writer is :class:`~.writer.VideoWriter`; the frame and source types are in
:mod:`.frames`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ..devices import nvidia_driver_present
from ..errors import InputError
from .encode_options import EncodeOptions
from .encoder import ColorInfo
from .frames import FrameItem, VideoInfo, to_rgb
from .paths import av_name, has_stream_scheme
from .tags import copyable_tags
from .writer import VideoWriter

__all__ = ["ColorInfo", "EncodeOptions", "FrameItem", "VideoInfo", "VideoReader", "VideoWriter", "to_rgb"]

log = logging.getLogger(__name__)

# how tags that are not UTF-8 (a damaged header) are read: replaced characters, so
# that the file still opens (PyAV's default, "strict", fails the whole open)
TAG_ERRORS = "replace"


def _hwaccel(kind: str) -> Any:
    """PyAV decode acceleration for ``kind`` ('auto', 'cuda' or 'none'); None for software."""
    if kind == "none" or (kind == "auto" and not nvidia_driver_present()):
        return None
    from av.codec.hwaccel import HWAccel

    return HWAccel("cuda", allow_software_fallback=True)


def _open_input(path: Path, options: dict[str, str] | None, timeout: float | tuple | None,
                hwaccel: str = "auto") -> Any:
    stream = has_stream_scheme(str(path))
    if not stream and not Path(path).exists():
        raise InputError(f"input not found: {path}")
    name = str(path) if stream else av_name(path)
    accel = _hwaccel(hwaccel)
    if accel is not None:
        try:
            return av.open(name, options=options or {}, timeout=timeout, hwaccel=accel,
                           metadata_errors=TAG_ERRORS)
        except av.error.FFmpegError as exc:
            log.info("NVDEC decoding unavailable (%s): decoding on the CPU", exc.strerror or exc)
    try:
        return av.open(name, options=options or {}, timeout=timeout, metadata_errors=TAG_ERRORS)
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot open {path}: not a video or image file ({exc.strerror or exc})") from None


def _attached_picture(stream: Any) -> bool:
    return bool(int(stream.disposition) & int(av.stream.Disposition.attached_pic))


def _aspect(stream: Any) -> Fraction | None:
    """The sample (pixel) aspect ratio of a video stream; None for square or unknown."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar and sar > 0 and sar != 1 else None


def _warn_alpha(tags: dict[str, str], pix_fmt: str) -> None:
    """Say that an alpha channel (ProRes 4444, PNG, VP9 with alpha: a stream tag) is not kept."""
    try:
        alpha = any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except ValueError:
        alpha = False
    if alpha or str(tags.get("alpha_mode", tags.get("ALPHA_MODE", ""))) == "1":
        log.warning("the source has an alpha channel (%s): the output has none (video outputs are opaque)",
                    pix_fmt if alpha else "VP9 alpha")


def probe_video(path: Path) -> None:
    """InputError unless ``path`` opens as media with a video stream (checked before any
    model loads; the reader says the rest)."""
    container = _open_input(path, None, None, hwaccel="none")
    try:
        # a stream whose codec FFmpeg could not set up (a truncated header) has no context
        if not any(getattr(v.codec_context, "width", 0) > 0 for v in container.streams.video):
            raise InputError(f"{path} is not a video or image file (no video stream)")
    finally:
        container.close()


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
        self.stream = self._pick_video()
        self.stream.thread_type = "SLICE"  # frame threading loses frames around damaged packets
        cc = self.stream.codec_context
        copy = ([s for s in self.container.streams if s.type in ("audio", "subtitle", "data")]
                if copy_streams else [])
        self.info = VideoInfo(
            width=cc.width, height=cc.height, time_base=self.stream.time_base,
            rate=self.stream.average_rate or self.stream.guessed_rate, frames=self.stream.frames or 0,
            codec=cc.name, pix_fmt=cc.pix_fmt or "yuv420p", color=ColorInfo.of(cc), copy_streams=copy,
            metadata=copyable_tags(self.container), stream_metadata=copyable_tags(self.stream),
            sample_aspect_ratio=_aspect(self.stream), field_order=int(cc.field_order or 0),
            base_rate=self.stream.guessed_rate or self.stream.average_rate,
        )
        if self.info.width <= 0 or self.info.height <= 0:
            raise InputError(f"{path}: video stream has no frame size (corrupt header?)")
        self._size: tuple[int, int] = (cc.width, cc.height)
        _warn_alpha(self.info.stream_metadata, self.info.pix_fmt)
        self.info.stream_metadata.pop("alpha_mode", None)  # the output has no alpha

    def _pick_video(self) -> Any:
        """The first video stream that is not a cover picture; the others are named in a
        warning (neither derained nor copied)."""
        videos = list(self.container.streams.video)
        if not videos:
            raise InputError(f"no video stream in {self.path}")
        moving = [v for v in videos if not _attached_picture(v)] or videos
        stream, others = moving[0], [v for v in videos if v is not moving[0]]
        if others:
            log.warning("only video stream #%d is derained; %s not kept: %s", stream.index,
                        "this one is" if len(others) == 1 else "these are",
                        ", ".join(f"#{v.index} ({'cover picture' if _attached_picture(v) else 'video'})"
                                  for v in others))
        return stream

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
        more than 3 nominal frame durations, or a change of frame size (a stream
        discontinuity for the smoother)."""
        jumped = self.corrupt_packets != self._corrupt_seen
        self._corrupt_seen = self.corrupt_packets
        if (frame.width, frame.height) != self._size:
            log.info("frame size %dx%d -> %dx%d at pts %s", *self._size, frame.width, frame.height, frame.pts)
            self._size, jumped = (frame.width, frame.height), True
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
