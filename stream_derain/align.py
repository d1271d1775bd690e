"""Explicit alignment of a temporal window: each neighbour warped onto the target frame.

A multi-frame model exported with ``"align": "flow"`` in its manifest reads its
neighbours (window slots 1..K-1) after this step; the target (slot 0) is untouched.
The flow is OpenCV's DIS from the target's luma to the neighbour's, at the preset and
resolution the model's align mode names (:data:`FLOWS`: ``"flow"`` is ``PRESET_FAST`` at
most 320 pixels on the long side, ``"flow-medium"`` ``PRESET_MEDIUM`` at up to 640),
upsampled and rescaled to the frame, and each neighbour is warped backwards with it (bilinear, border
replicated): ``aligned(x) = neighbour(x + flow(x))``. Training
(:mod:`stream_derain.train.video_data`) and inference (:mod:`stream_derain.stages`)
call the same function, so the network sees the same alignment errors in both.

numpy and OpenCV only (no torch): the runtime imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

FLOW_SIDE = 320  # long side of the frames the fast flow is computed on (speed: ~1-2 ms a flow)


@dataclass(frozen=True)
class Flow:
    """How an align mode computes its flow: a DIS preset on luma at most ``side`` pixels
    on the long side."""

    preset: int
    side: int


FLOWS = {
    "flow": Flow(cv2.DISOPTICAL_FLOW_PRESET_FAST, FLOW_SIDE),
    # ~4x the CPU of "flow"; fewer flow errors that look like rain (docs/derainer_v4_video.md)
    "flow-medium": Flow(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 640),
}


def grey(frame: np.ndarray, scale: float) -> np.ndarray:
    """The luma the flow is computed on: uint8, reduced by ``scale`` (area-averaged)."""
    f = frame if frame.dtype == np.uint8 else np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
    g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return g


def flow_scale(h: int, w: int, side: int = FLOW_SIDE) -> float:
    """The factor frames are reduced by for the flow (1.0: full resolution)."""
    return min(1.0, side / max(h, w))


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    """HxWx2 float32 pixel coordinates (x, y), made once per frame size."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid = np.stack([gx, gy], axis=-1)
    grid.flags.writeable = False
    return grid


def warp(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: ``out(x) = frame(x + flow(x))``, bilinear, border replicated.
    ``frame`` HxW or HxWxC, ``flow`` HxWx2 (x, y) in pixels."""
    h, w = flow.shape[:2]
    return cv2.remap(frame, _grid(h, w) + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def align_window(slots: Sequence[np.ndarray], mode: str = "flow",
                 greys: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """HxWx3 frames in slot order (uint8, or float in [0, 1]) -> the same with every
    neighbour warped onto slot 0 by the flow ``mode`` names (:data:`FLOWS`). A neighbour
    that is the target itself (a repeated frame at a clip's end) is passed through.
    ``greys``: each slot's :func:`grey` at :func:`flow_scale` (the mode's side) when the
    caller keeps them (a frame serves K windows)."""
    target = slots[0]
    h, w = target.shape[:2]
    flow_spec = FLOWS[mode]
    scale = flow_scale(h, w, flow_spec.side)
    dis = cv2.DISOpticalFlow_create(flow_spec.preset)
    greys = greys or [grey(f, scale) for f in slots]
    out = [target]
    for frame, g in zip(slots[1:], greys[1:]):
        if frame is target:
            out.append(frame)
            continue
        flow = dis.calc(greys[0], g, None)
        if scale < 1.0:
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(1.0 / scale)
        out.append(warp(frame, flow))
    return out
