"""The temporal window of a multi-frame model: which frames each derained frame sees.

A K-frame model derains the frame in slot 0 of a window of K frames, its neighbours
at the relative offsets of the window mode (:attr:`.catalog.ModelInfo.offsets`):
``centred`` (K=5: 0, -1, +1, -2, +2) reads later frames, so a frame is released only
once its look-ahead (``max(offsets)`` frames) has arrived or the segment ends;
``causal`` (0, -1, -2, ...) never reads a later frame and releases each frame at once.

:class:`FrameWindow` is that logic alone, without threads or a backend: ``push`` items
in stream order, get back the ones that are ready, each with its slot frames; ``flush``
at the end of the stream. A *segment* is a run of frames without a cut; a slot outside
the segment (start and end of the video, either side of a cut) repeats the nearest
frame of the same segment, so a frame never sees a frame from the other side of a cut.
A cut is:

- ``item.discontinuity`` (a seek, a live reconnect, a gap in timestamps);
- a gap in ``item.index`` (frames dropped in between: a live queue or the latency policy);
- a change of frame size;
- a scene cut: the mean absolute difference of grey 1/8-size thumbnails of two
  consecutive frames above :data:`SCENE_CUT_MAD` (see there for the measurement);
- ``push(item, cut=True)``.

Items without an ``image`` (copied audio/subtitle packets) keep their place in the
stream: they are held while frames before them are pending and released in order.
Memory is bounded: the window keeps the pending frames and the ``-min(offsets)`` frames
before the oldest of them. :func:`stack_slots` stacks the slots of ready frames into the
backend's input; with ``align`` (a model whose manifest says ``"align": "flow"``) each
neighbour is first warped onto its target (:func:`align_slots`). numpy and OpenCV only
(no torch).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .align import FLOWS, align_window, flow_scale, grey, window_flows

# Mean absolute difference (grey levels, 0-255) of the 1/8-size grey thumbnails of two
# consecutive frames above which they are a scene cut. Measured on samples/ (heavy rain,
# a moving camera): consecutive frames 6.0-6.4 (360p cafe) and 8.3-8.7 (720p launchpad),
# frames 5 apart at most 11.1; a cut between the two clips (resized to one size) 49.6-51.
# 30 sits 3x above the normal motion and well below a cut between different scenes.
SCENE_CUT_MAD = 30.0
THUMB_SCALE = 8  # the thumbnail's side is 1/8 of the frame's (area-averaged: rain streaks average out)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> (H/8)x(W/8) float32 grey, area-averaged (about 2 ms at 1080p)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    size = (max(w // THUMB_SCALE, 1), max(h // THUMB_SCALE, 1))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def scene_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in grey levels."""
    return float(np.abs(a - b).mean())


def still_window(batch: np.ndarray, frames: int) -> np.ndarray:
    """NxHxWx3 still images -> NxHxWx(3K): the image repeated in every slot (a still
    image's window is the image itself)."""
    return batch if frames == 1 else np.tile(batch, (1, 1, 1, frames))


@dataclass(eq=False)
class WindowFrame:
    """A frame as the window holds it. ``image`` is the input as pushed (the item's own
    ``image`` may be replaced once derained); ``position`` counts from the start of its
    segment; ``cache`` is the caller's, e.g. the frame uploaded to the device once and
    reused by every window that reads it; ``grey`` its luma for the flow
    (:func:`.align.grey`), made once for the K windows that align to or from it."""

    item: Any
    image: Any
    position: int
    cache: Any = None
    grey: Any = None
    flows: dict[int, np.ndarray] = field(default_factory=dict)  # by the other frame's position


@dataclass(frozen=True)
class Ready:
    """An item the window releases: a frame with its K slot frames (slot 0 is the frame
    itself), or a non-frame item with no slots."""

    item: Any
    slots: tuple[WindowFrame, ...] = ()

    @property
    def is_frame(self) -> bool:
        return bool(self.slots)


def _distinct(slots: Sequence[WindowFrame], mode: str) -> tuple[list[WindowFrame], dict[str, Any]]:
    """The distinct frames of a window (slot 0 first) and the keyword arguments of
    :func:`.align.align_window` / :func:`.align.window_flows` for them: each frame's luma
    (made once, kept on the frame), the frames' offsets from the target, and the flow of
    a pair (a chained mode's flows between consecutive frames serve several windows, so
    they are kept on the frame too)."""
    unique = list({id(f.image): f for f in slots}.values())  # slot 0 (the target) first
    spec = FLOWS[mode]
    scale = flow_scale(*slots[0].image.shape[:2], spec.side)
    for f in unique:
        if f.grey is None:
            f.grey = grey(f.image, scale)
    dis = spec.create()

    def pair(i: int, j: int) -> np.ndarray:
        a, b = unique[i], unique[j]
        if not spec.chain:
            return dis.calc(a.grey, b.grey, None)
        if b.position not in a.flows:
            a.flows[b.position] = dis.calc(a.grey, b.grey, None)
        return a.flows[b.position]

    offsets = [f.position - unique[0].position for f in unique]
    return unique, {"greys": [f.grey for f in unique], "offsets": offsets, "pair": pair}


def align_slots(slots: Sequence[WindowFrame], mode: str = "flow") -> list[np.ndarray]:
    """The slot images of one window, each neighbour warped onto the target (slot 0) by
    :func:`.align.align_window`. A frame in several slots (the nearest frame repeated at
    a segment's ends) is aligned once; a window that is its target alone (a still image,
    a one-frame segment) computes no flow at all."""
    images = [f.image for f in slots]
    if len({id(im) for im in images}) == 1:
        return images
    unique, kw = _distinct(slots, mode)
    aligned = align_window([f.image for f in unique], mode, **kw)
    by_id = {id(f.image): out for f, out in zip(unique, aligned)}
    return [by_id[id(im)] for im in images]


def slot_flows(slots: Sequence[WindowFrame], mode: str = "flow") -> list[np.ndarray | None]:
    """Each slot's flow from the target at the flow's resolution (:func:`.align.window_flows`),
    None where the slot holds the target itself: what a device warps the slots by (the
    frames stay where they were uploaded)."""
    if len({id(f.image) for f in slots}) == 1:
        return [None] * len(slots)
    unique, kw = _distinct(slots, mode)
    flows = window_flows([f.image for f in unique], mode, **kw)
    by_id = {id(f.image): flow for f, flow in zip(unique, flows)}
    return [by_id[id(f.image)] for f in slots]


def stack_slots(windows: Sequence[tuple[WindowFrame, ...]], align: str | None = None) -> np.ndarray:
    """The slot frames of N windows (HxWx3 uint8 each, one size) -> NxHxWx(3K) uint8,
    slot j in channels 3j..3j+2 (what :meth:`.backends.base.Backend.infer` takes);
    ``align``: a flow mode (:data:`.align.FLOWS`) to warp the neighbours onto the target
    with first (:func:`align_slots`)."""
    first = windows[0][0].image
    h, w = first.shape[:2]
    k = len(windows[0])
    out = np.empty((len(windows), h, w, 3 * k), np.uint8)
    for i, slots in enumerate(windows):
        images = align_slots(slots, align) if align else [f.image for f in slots]
        for j, image in enumerate(images):
            out[i, :, :, 3 * j:3 * j + 3] = image
    return out


def is_frame(item: Any) -> bool:
    """A frame has an ``image``; anything else (a packet) only keeps its place."""
    return getattr(item, "image", None) is not None


class FrameWindow:
    """The window of one stream: ``push`` items in order, ``flush`` at the end.

    ``offsets``: the slot offsets (slot 0 is 0, the target); ``scene_cut``: the
    thumbnail difference of a scene cut (:data:`SCENE_CUT_MAD`; None: no scene
    detection). ``cuts`` counts the cuts seen."""

    def __init__(self, offsets: Sequence[int], scene_cut: float | None = SCENE_CUT_MAD) -> None:
        self.offsets = tuple(int(o) for o in offsets)
        if not self.offsets or self.offsets[0] != 0:
            raise ValueError(f"slot 0 must be the target (offset 0), got {list(self.offsets)}")
        self.ahead = max(max(self.offsets), 0)  # frames of look-ahead
        self.behind = max(-min(self.offsets), 0)  # frames kept for the windows of later frames
        self.scene_cut = scene_cut
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything (what is pending is lost: :meth:`flush` first to keep it)."""
        self._segment: deque[WindowFrame] = deque()  # frames still needed, oldest first
        self._pending: deque[Any] = deque()  # WindowFrames and other items not yet released
        self._next = 0  # the position of the segment's next frame
        self._last: tuple[Any, Any, np.ndarray | None] | None = None  # (shape, index, thumbnail)

    def __len__(self) -> int:
        """Frames held (pending and kept for later windows)."""
        return len(self._segment)

    def push(self, item: Any, cut: bool = False) -> list[Ready]:
        """Add the next item of the stream; returns the items now ready, in stream order."""
        if not is_frame(item):
            if not self._pending:
                return [Ready(item)]
            self._pending.append(item)
            return []
        thumb = thumbnail(item.image) if self.scene_cut is not None else None
        out: list[Ready] = []
        if self._last is not None and (cut or self.is_cut(item, thumb)):
            out = self._release(end=True)
            self._segment.clear()
            self._next = 0
            self.cuts += 1
        frame = WindowFrame(item, item.image, self._next)
        self._next += 1
        self._segment.append(frame)
        self._pending.append(frame)
        self._last = (item.image.shape, getattr(item, "index", None), thumb)
        return out + self._release(end=False)

    def flush(self) -> list[Ready]:
        """The end of the stream: everything still held, in order; the window starts afresh."""
        out = self._release(end=True)
        self.reset()
        return out

    def is_cut(self, item: Any, thumb: np.ndarray | None) -> bool:
        """Does ``item`` start a new segment after the last frame pushed?"""
        shape, index, last_thumb = self._last  # type: ignore[misc]
        if getattr(item, "discontinuity", False) or item.image.shape != shape:
            return True
        now = getattr(item, "index", None)
        if isinstance(now, int) and isinstance(index, int) and now != index + 1:
            return True
        return (thumb is not None and last_thumb is not None
                and scene_change(thumb, last_thumb) > self.scene_cut)  # type: ignore[operator]

    def _release(self, end: bool) -> list[Ready]:
        """The pending items whose look-ahead has arrived (all of them at the ``end`` of a segment)."""
        out: list[Ready] = []
        newest = self._next - 1
        while self._pending:
            head = self._pending[0]
            if isinstance(head, WindowFrame):
                if not end and head.position + self.ahead > newest:
                    break
                out.append(Ready(head.item, self._slots(head.position, newest)))
            else:
                out.append(Ready(head))
            self._pending.popleft()
        self._trim()
        return out

    def _slots(self, position: int, newest: int) -> tuple[WindowFrame, ...]:
        """The slot frames of the frame at ``position``: each offset clamped into the
        segment (the nearest frame of the segment)."""
        first = self._segment[0].position
        return tuple(self._segment[min(max(position + o, 0), newest) - first] for o in self.offsets)

    def _trim(self) -> None:
        """Drop the frames no pending or future window can read."""
        oldest = next((f.position for f in self._pending if isinstance(f, WindowFrame)), self._next)
        keep_from = oldest - self.behind
        while self._segment and self._segment[0].position < keep_from:
            self._segment.popleft()
