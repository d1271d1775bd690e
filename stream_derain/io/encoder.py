"""The one video encoder core: a stream set up from :class:`~.encode_options.EncodeOptions`, RGB
frames converted and encoded, the encoder flushed. The file writer
(:class:`~.video.VideoWriter`) and the live outputs (``live.outputs.LiveEncoder``:
push and recorder) both encode through :class:`VideoEncoder`; they mux its packets
into their own containers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from ..errors import OutputError
from .encode_options import EncodeOptions, check_options, choose_pix_fmt, codec_options, open_encoder

__all__ = ["ColorInfo", "VideoEncoder"]
log = logging.getLogger(__name__)
FIELD_CODING = ("libx264", "mpeg2video", "mpeg4")  # encoders that code interlaced fields (+ildct)


@dataclass(frozen=True)
class ColorInfo:
    """Colour tags of a stream (FFmpeg enum values; 2 means unspecified): read from the
    source on decode, used for the conversions and tagged on the output on encode."""

    range: int = 0
    space: int = 2
    primaries: int = 2
    trc: int = 2

    @classmethod
    def of(cls, obj: Any) -> ColorInfo:
        return cls(int(obj.color_range), int(obj.colorspace), int(obj.color_primaries), int(obj.color_trc))

    @property
    def matrix(self) -> int | None:
        """The matrix swscale should use: None (its default, BT.601) when unspecified."""
        return None if self.space in (2, 0) else self.space


class VideoEncoder:
    """One video stream added to ``container`` and opened at once (an encoder that cannot
    run here fails before any frame: :func:`~.encode_options.open_encoder`).

    ``width`` x ``height``: the frame size (``even=True`` rounds it down to even, cropping
    the frames, as 4:2:0 streaming needs); ``source_pix_fmt``: the pixel format to keep
    when the encoder takes it (:func:`~.encode_options.choose_pix_fmt`); ``color``: colour tags
    for the conversion and the stream (None: swscale's defaults, untagged);
    ``low_latency``: no B-frames, x264/x265 ``tune=zerolatency``; ``b_frames=False``: no
    B-frames (AVI and other containers without timestamps to reorder by); ``gop``: keyframe
    interval in frames; ``rotation``: display rotation, set before the first frame;
    ``sample_aspect_ratio`` and ``field_order`` (FFmpeg's AVFieldOrder): the source's,
    tagged on the stream. A frame of another size than the stream's (the source changed
    size mid-stream) is scaled to it, as ffmpeg does. ``name``: what messages call the
    output."""

    def __init__(self, container: Any, opts: EncodeOptions, width: int, height: int, *,
                 rate: Fraction | int, time_base: Fraction, source_pix_fmt: str = "yuv420p",
                 color: ColorInfo | None = None, even: bool = False, low_latency: bool = False,
                 b_frames: bool = True, gop: int | None = None, rotation: float = 0.0,
                 sample_aspect_ratio: Fraction | None = None, field_order: int = 0, name: str = "") -> None:
        codec = check_options(opts)
        self.even = even
        if even:
            width, height = width - width % 2, height - height % 2
        pix_fmt = choose_pix_fmt(codec, width, height, source_pix_fmt, opts.pix_fmt)
        self.color, self.rotation, self.frames = color, rotation, 0
        self._other_size: tuple[int, int] | None = None  # the last frame size that was scaled
        try:
            self.stream = stream = container.add_stream(opts.codec, rate=rate)
            cc = stream.codec_context
            cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
            stream.time_base = cc.time_base = time_base
            if color is not None:
                cc.color_range, cc.colorspace = color.range, color.space
                cc.color_primaries, cc.color_trc = color.primaries, color.trc
            if sample_aspect_ratio:
                cc.sample_aspect_ratio = sample_aspect_ratio
            if field_order > 1:  # interlaced: tagged, and coded as fields (ffmpeg's -flags +ildct+ilme)
                cc.field_order = field_order
                if stream.codec.name in FIELD_CODING:
                    cc.flags = int(cc.flags) | int(av.codec.context.Flags.interlaced_dct) | int(
                        av.codec.context.Flags.interlaced_me)
            if gop:
                cc.gop_size = gop
            if opts.bitrate:
                cc.bit_rate = opts.bitrate
            if opts.threads:
                cc.thread_count = opts.threads
            options = codec_options(stream.codec.name, opts)
            if low_latency:
                options.update({"tune": "zerolatency"} if stream.codec.name in ("libx264", "libx265") else {})
            if low_latency or not b_frames:
                options["bf"] = "0"
            cc.options = self.options = options  # (the encoder takes them out of cc.options on open)
            open_encoder(stream)
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot encode {opts.codec} into {name or container.name}: {exc}") from None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the encoded frames."""
        cc = self.stream.codec_context
        return cc.width, cc.height

    def encode(self, image: np.ndarray, pts: int, time_base: Fraction) -> list[av.Packet]:
        """One HxWx3 uint8 RGB frame (cropped to :attr:`size`) at ``pts`` in ``time_base``
        -> the packets the encoder gives back (often none at first: it looks ahead)."""
        if self.frames == 0 and self.rotation:
            self.stream.set_display_rotation(self.rotation)
        cc, c = self.stream.codec_context, self.color
        h, w = image.shape[:2]
        scale: dict[str, Any] = {}
        if self.even and 0 <= h - cc.height <= 1 and 0 <= w - cc.width <= 1:
            image = np.ascontiguousarray(image[:cc.height, :cc.width])
        elif (h, w) != (cc.height, cc.width):
            scale = {"width": cc.width, "height": cc.height, "interpolation": "BICUBIC"}
            if self._other_size != (w, h):
                log.warning("the frame size changed from %dx%d to %dx%d mid-stream: scaled to %dx%d",
                            cc.width, cc.height, w, h, cc.width, cc.height)
                self._other_size = (w, h)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
            format=cc.pix_fmt, dst_colorspace=c.matrix if c else None,
            dst_color_range=(c.range or None) if c else None, **scale)
        if c is not None:
            frame.color_range, frame.colorspace = c.range, c.space
            frame.color_primaries, frame.color_trc = c.primaries, c.trc
        frame.pts, frame.time_base = pts, time_base  # not stream.time_base: the muxer may change it
        packets = self.stream.encode(frame)
        self.frames += 1
        return packets

    def flush(self) -> list[av.Packet]:
        """The packets the encoder still holds; call once, at the end."""
        return self.stream.encode()
