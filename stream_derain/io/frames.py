"""What travels between the video reader, the pipeline and the writer: the source's
description (:class:`VideoInfo`) and one decoded frame (:class:`FrameItem`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np

from .encoder import ColorInfo

__all__ = ["FrameItem", "VideoInfo", "to_rgb"]


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
    sample_aspect_ratio: Fraction | None = None  # None: square pixels / unknown
    base_rate: Fraction | None = None  # the stream's own frame rate (r_frame_rate), for CFR outputs
    field_order: int = 0  # FFmpeg's AVFieldOrder: 0 unknown, 1 progressive, 2 tt, 3 bb, 4 tb, 5 bt


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
