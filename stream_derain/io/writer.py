"""The file writer: RGB frames encoded on the output clock (:mod:`.clock`), with the
source's colour, rotation, aspect ratio, field order and tags, and the copied streams
remuxed (or audio transcoded where the container cannot hold it)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

import av

from ..errors import OutputError
from .audio import AudioTranscoder, needs_transcode
from .clock import OutputClock, counts_frames
from .encode_options import EncodeOptions, encoder_for, unknown_extension
from .encoder import VideoEncoder
from .frames import FrameItem, VideoInfo
from .paths import av_name
from .tags import copyable_tags

__all__ = ["VideoWriter"]
log = logging.getLogger(__name__)


class VideoWriter:
    """Encodes RGB frames on the output clock and remuxes copied packets.
    ``close()`` always finalises the container (playable file)."""

    def __init__(self, path: Path, info: VideoInfo, opts: EncodeOptions, name: Path | None = None) -> None:
        """``name``: the path to name in messages (the output, when ``path`` is its
        temporary file)."""
        self.path, self.info = name or path, info
        self.container = self._open(path, opts)
        try:
            self.clock = OutputClock(info.time_base, info.base_rate or info.rate,
                                     cfr=counts_frames(self.container))
            self.encoder = VideoEncoder(
                self.container, encoder_for(self.container, opts, str(self.path)), info.width, info.height,
                rate=self.clock.rate, time_base=self.clock.time_base, b_frames=not self.clock.cfr,
                source_pix_fmt=info.pix_fmt,
                color=info.color, sample_aspect_ratio=info.sample_aspect_ratio, field_order=info.field_order,
                name=str(self.path))
        except BaseException:
            self.container.close()
            raise
        self.stream = self.encoder.stream
        self.container.metadata.update(info.metadata)
        self.stream.metadata.update(info.stream_metadata)
        self.transcodes: dict[int, AudioTranscoder] = {}
        self.copies = self._copy_streams()
        self._pending: list[av.Packet] = []  # encoded, waiting for their duration (the next frame)
        self._held: list[av.Packet] = []  # copied packets before the first frame (header not written)
        self._dropped: dict[str, float] = {}  # stream type -> seconds of packets before the first frame

    def _open(self, path: Path, opts: EncodeOptions) -> Any:
        try:
            return av.open(av_name(path), "w", options=opts.container_options)
        except ValueError:
            raise OutputError(unknown_extension(self.path)) from None
        except (av.error.FFmpegError, OSError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise OutputError(f"cannot write {self.path}: {why}") from None

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

    def write_frame(self, item: FrameItem) -> None:
        if self.frames == 0:
            self.encoder.rotation = self.info.rotation  # known once the reader decoded a frame
        pts = self.clock.frame(item.pts, item.time_base or self.info.time_base, item.duration)
        self._pending += self.encoder.encode(item.image, pts, self.clock.time_base)
        self._mux_ready()
        if self._held:
            held, self._held = self._held, []
            for packet in held:
                self._route(packet)

    def _mux_ready(self, final: bool = False) -> None:
        """Mux the encoded packets whose duration is known (in order): each frame lasts
        until the next one shown, so that the stream lasts as long as the source's."""
        ready = 0
        for packet in self._pending:
            known, duration = self.clock.duration(packet.pts, final)
            if not known:
                break
            if duration:
                packet.duration = duration
            ready += 1
        done, self._pending = self._pending[:ready], self._pending[ready:]
        self._mux(done)

    def write_packet(self, packet: av.Packet) -> None:
        """Remux a packet of a copied stream; held back until the first frame, so that
        the header (written by the first mux) has the video stream's side data, and the
        clock knows its origin."""
        if packet.stream.index in self.copies or packet.stream.index in self.transcodes:
            if self.frames == 0:
                self._held.append(packet)
            else:
                self._route(packet)

    def _route(self, packet: av.Packet) -> None:
        if not self.clock.shift(packet):
            kind, seconds = packet.stream.type, float((packet.duration or 0) * packet.time_base)
            self._dropped[kind] = self._dropped.get(kind, 0.0) + seconds
            return
        transcoder = self.transcodes.get(packet.stream.index)
        if transcoder is not None:
            self._mux(transcoder.packets(packet))
            return
        packet.stream = self.copies[packet.stream.index]
        self._mux([packet])

    def _say_dropped(self) -> None:
        """One warning for what came before the first video frame (more than a few frames'
        worth): the output starts at that frame."""
        lost = {k: v for k, v in self._dropped.items() if v > 0.2}
        if lost:
            log.warning("not kept: %s before the first video frame (the output starts at it)",
                        ", ".join(f"{v:.2f} s of {k}" for k, v in lost.items()))

    def _mux(self, packets: Any) -> None:
        try:
            for p in packets:
                self.container.mux(p)
        except OSError as exc:
            raise self._output_error(exc) from None
        except (av.error.FFmpegError, ValueError) as exc:  # e.g. a header the muxer rejects
            raise self._muxer_error(exc) from None

    def _muxer_error(self, exc: Exception) -> OutputError:
        """The muxer's refusal, with FFmpeg's last logged reason where PyAV kept one (a
        damaged audio header: "Error parsing AAC extradata ...")."""
        why = getattr(exc, "strerror", None) or str(exc)
        logged = getattr(exc, "log", None)
        if logged and len(logged) == 3 and logged[2]:
            why = f"{why} ({str(logged[2]).strip()})"
        return OutputError(f"cannot write {self.path}: {why}")

    def _output_error(self, exc: OSError) -> OutputError:
        if exc.errno == errno.ENOSPC:
            return OutputError(f"disk full while writing {self.path} ({self.frames} frames encoded)")
        return OutputError(f"cannot write {self.path}: {exc.strerror or exc}")

    def close(self) -> None:
        """Flush the encoder and write the trailer; safe to call twice."""
        if self.container is None:
            return
        try:
            self._pending += self.encoder.flush()
            self._mux_ready(final=True)
            held, self._held = (self._held if self.frames else []), []
            for packet in held:
                self._route(packet)
            for transcoder in self.transcodes.values():
                self._mux(transcoder.flush())
            self._say_dropped()
        finally:
            container, self.container = self.container, None
            try:
                container.close()
            except OSError as exc:
                raise self._output_error(exc) from None
            except (av.error.FFmpegError, ValueError) as exc:  # the trailer of a rejected header
                raise self._muxer_error(exc) from None
