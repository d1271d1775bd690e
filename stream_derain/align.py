"""Explicit alignment of a temporal window: each neighbour warped onto the target frame.

A multi-frame model exported with ``"align": "flow"`` in its manifest reads its
neighbours (window slots 1..K-1) after this step; the target (slot 0) is untouched.
The flow is OpenCV's DIS from the target's luma to the neighbour's, at the preset and
resolution the model's align mode names (:data:`FLOWS`: ``"flow"`` is ``PRESET_FAST`` at
most 320 pixels on the long side, ``"flow-medium"`` ``PRESET_MEDIUM`` at up to 640),
upsampled and rescaled to the frame, and each neighbour is warped backwards with it (bilinear, border
replicated): ``aligned(x) = neighbour(x + flow(x))``. A *chained* mode (``"flow-chain"``)
computes flows only between consecutive frames and composes them for the farther
neighbours (:func:`compose`): the stream's windows share those flows, so a frame costs
two flows (centred) or one (causal) instead of K - 1. Training
(:mod:`stream_derain.train.video_data`) and inference (:mod:`stream_derain.stages`)
call the same function, so the network sees the same alignment errors in both.

numpy and OpenCV only (no torch): the runtime imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    chain: bool = False  # flows between consecutive frames only, composed for farther neighbours
    finest: int | None = None  # the DIS finest scale, if not the preset's (0: the flow at ``side``)
    stride: int | None = None  # the patch stride, if not the preset's (larger: fewer patches)

    def create(self) -> cv2.DISOpticalFlow:
        """A DIS instance with these settings (one per thread: it keeps buffers)."""
        dis = cv2.DISOpticalFlow_create(self.preset)
        if self.finest is not None:
            dis.setFinestScale(self.finest)
        if self.stride is not None:
            dis.setPatchStride(self.stride)
        return dis


FLOWS = {
    "flow": Flow(cv2.DISOPTICAL_FLOW_PRESET_FAST, FLOW_SIDE),
    # ~4x the CPU of "flow"; fewer flow errors that look like rain (docs/derainer_v4_video.md)
    "flow-medium": Flow(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 640),
    # the flow at 320 px itself (not 80 as "flow"), one DIS per pair of consecutive frames,
    # composed for the farther neighbours: most of "flow-medium"'s gain at a third of its CPU
    "flow-chain": Flow(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, FLOW_SIDE, chain=True, finest=0),
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


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The flow a -> c from ``first`` (a -> b) and ``second`` (b -> c), HxWx2 at one
    resolution: ``first(x) + second(x + first(x))``."""
    return first + warp(second, first)


PairFlow = Callable[[int, int], np.ndarray]  # (slot i, slot j) -> the flow from i to j


def chain(offsets: Sequence[int], j: int) -> list[int] | None:
    """The slots from slot 0 to slot ``j`` one frame apart (``[0, ..., j]``), or None
    when the window lacks a frame in between."""
    where = {o: i for i, o in enumerate(offsets)}
    step = 1 if offsets[j] > offsets[0] else -1
    path = [where.get(o) for o in range(offsets[0], offsets[j] + step, step)]
    return None if None in path else path  # type: ignore[return-value]


def window_flows(slots: Sequence[np.ndarray], mode: str = "flow",
                 greys: Sequence[np.ndarray] | None = None, offsets: Sequence[int] | None = None,
                 pair: PairFlow | None = None) -> list[np.ndarray | None]:
    """Each slot's flow from slot 0 (the target), hxwx2 at the flow's resolution
    (:func:`flow_scale` of the mode's side; :func:`upsample` brings it to the frame);
    None for slot 0 and for a neighbour that is the target itself (a repeated frame at a
    clip's end). ``slots``, ``greys``, ``offsets``, ``pair``: as :func:`align_window`."""
    target = slots[0]
    flow_spec = FLOWS[mode]
    if greys is None:
        scale = flow_scale(*target.shape[:2], flow_spec.side)
        greys = [grey(f, scale) for f in slots]
    if pair is None:
        dis = flow_spec.create()
        pair = lambda i, j: dis.calc(greys[i], greys[j], None)  # noqa: E731
    flows: list[np.ndarray | None] = [None]
    for j, frame in enumerate(slots[1:], start=1):
        if frame is target:
            flows.append(None)
            continue
        path = chain(offsets, j) if flow_spec.chain and offsets is not None else None
        if path is None:
            flows.append(pair(0, j))
            continue
        flow = pair(path[0], path[1])
        for a, b in zip(path[1:], path[2:]):
            flow = compose(flow, pair(a, b))
        flows.append(flow)
    return flows


# Multiply-accumulates a pixel of each step, counted from OpenCV's DIS loops
# (modules/video/src/dis_flow.cpp) and from the functions above; an upper bound, since
# DIS's gradient descent stops early when a patch stops improving.
_SSD = 6  # a patch pixel of an SSD candidate: bilinear sample (4), difference, square
_DESCENT = 8  # a patch pixel of a gradient-descent step: sample (4), diff, 2 gradient terms, square
_DENSIFY = 10  # a pixel's share of one overlapping patch in the densification
_PER_LEVEL = 29  # pyramid (4), Sobel gradients (12), structure tensor sums (13)
_REFINE = 125  # a fixed-point iteration of variational refinement (data, smoothness, 5 SOR sweeps)


def dis_macs_per_pixel(spec: Flow) -> float:
    """An upper bound of one DIS flow's multiply-accumulates per pixel of the image it is
    computed on (the frame reduced to ``spec.side``): patch inverse search (two sweeps with
    spatial propagation, each three SSD candidates and half the descent steps),
    densification and variational refinement on each pyramid level from the finest scale
    down (each level a quarter of the one above: at most 4/3 of the finest)."""
    dis = spec.create()
    p, s = dis.getPatchSize(), dis.getPatchStride()
    steps, refine = dis.getGradientDescentIterations(), dis.getVariationalRefinementIterations()
    search = 2 * p * p * (3 * _SSD + steps // 2 * _DESCENT) / (s * s)
    level = search + -(-p // s) ** 2 * _DENSIFY + _PER_LEVEL + refine * _REFINE
    finest = dis.getFinestScale()
    upsample_out = 8 if finest else 0  # the finest level's flow resized back to the input
    return level * 4 / 3 / 4 ** finest + upsample_out


def window_work(mode: str, frames: int, causal: bool = False) -> tuple[int, int, int]:
    """What aligning one frame's K-frame window takes in a stream: (new DIS flows, flow
    compositions, neighbour warps). A chained mode shares the consecutive-frame flows
    between windows (two new ones a frame centred, one causal) and composes a neighbour
    d frames away from d flows (d - 1 compositions); a direct mode computes one flow per
    neighbour."""
    neighbours = frames - 1
    if not FLOWS[mode].chain:
        return neighbours, 0, neighbours
    distances = list(range(1, frames)) if causal else list(range(1, frames // 2 + 1)) * 2  # both sides
    return (1 if causal else 2), sum(d - 1 for d in distances), neighbours


def macs_per_pixel(mode: str, h: int, w: int, frames: int, causal: bool = False) -> float:
    """An upper bound of what aligning one frame's window costs in multiply-accumulates
    per frame pixel, at an HxW stream (:func:`window_work`): the DIS flows at the flow's
    resolution (:func:`dis_macs_per_pixel`), the luma they read, the compositions (a
    bilinear warp of two channels at the flow's resolution), and each neighbour's flow
    upsampled (2 channels) and its warp (bilinear, three channels, plus the grid). The
    issue's budget counts this with the network's."""
    spec = FLOWS[mode]
    area = flow_scale(h, w, spec.side) ** 2  # flow pixels per frame pixel
    flows, composes, warps = window_work(mode, frames, causal)
    luma = 3 + (1 if area < 1.0 else 0)
    return flows * dis_macs_per_pixel(spec) * area + luma + composes * 10 * area + warps * (10 + 14)


MACS_KEY = "align_macs_per_pixel"  # the manifest entry's record of macs_table
MACS_SIZES = ((360, 640), (1080, 1920))  # the bench's 640x360 and 1080p
MACS_HEADLINE = ("640x360", "centred")  # what one line beside the network's MACs shows


def macs_table(mode: str, frames: int) -> dict[str, dict[str, float]]:
    """:func:`macs_per_pixel` at :data:`MACS_SIZES`, centred and causal, as the manifest
    records it under :data:`MACS_KEY` beside the network's ``macs_per_pixel``."""
    return {f"{w}x{h}": {window: round(macs_per_pixel(mode, h, w, frames, window == "causal"), 1)
                         for window in ("centred", "causal")}
            for h, w in MACS_SIZES}


def macs_note(entry: dict) -> str:
    """What follows the network's MACs where a manifest entry is shown: the alignment's
    cost it records at :data:`MACS_HEADLINE` (" (+450 for the window's alignment at
    640x360, centred)"), or "" for a model that aligns nothing."""
    size, window = MACS_HEADLINE
    macs = entry.get(MACS_KEY, {}).get(size, {}).get(window)
    return "" if macs is None else f" (+{macs:.0f} for the window's alignment at {size}, {window})"


def upsample(flow: np.ndarray, h: int, w: int) -> np.ndarray:
    """A flow at the flow's resolution -> HxWx2 in the frame's pixels (bilinear)."""
    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow
    return cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.array([w / fw, h / fh], np.float32)


def align_window(slots: Sequence[np.ndarray], mode: str = "flow",
                 greys: Sequence[np.ndarray] | None = None,
                 offsets: Sequence[int] | None = None, pair: PairFlow | None = None) -> list[np.ndarray]:
    """HxWx3 frames in slot order (uint8, or float in [0, 1]) -> the same with every
    neighbour warped onto slot 0 by the flow ``mode`` names (:data:`FLOWS`). A neighbour
    that is the target itself (a repeated frame at a clip's end) is passed through.
    ``greys``: each slot's :func:`grey` at :func:`flow_scale` (the mode's side) when the
    caller keeps them (a frame serves K windows). A chained mode with the slots'
    frame ``offsets`` (distinct frames, slot 0 first) composes a neighbour's flow from
    the flows between consecutive frames of the window (:func:`chain`; the direct flow
    where a frame in between is missing). ``pair``: the caller's flow from slot i to
    slot j, e.g. one kept between windows (default: computed here)."""
    h, w = slots[0].shape[:2]
    flows = window_flows(slots, mode, greys, offsets, pair)
    return [frame if flow is None else warp(frame, upsample(flow, h, w)) for frame, flow in zip(slots, flows)]
