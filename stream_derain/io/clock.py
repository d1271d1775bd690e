"""The output's clock: one rule for every container.

- the first frame written is at 0: the source's first shown frame, or the first frame
  after ``--ss`` / ``--start`` (as ffmpeg's ``-ss``), whatever the source's start time
  (negative, 1.4 s into an MPEG-TS, ...);
- every later frame keeps its distance from the first (variable frame rates and gaps
  stay as they were); a frame without a timestamp, or one not after the frame before
  it, or one more than 30 hours after it (a broken timestamp, as ffmpeg's
  ``-dts_error_threshold``), comes one frame step after that frame (the step: its own
  duration, else the last interval, else the frame rate's);
- each frame lasts until the next one is shown (presentation order: an MP4's packet
  durations are decode-order steps, wrong for VFR sources with B-frames); the last
  frame lasts its source duration, or the step before it;
- copied packets (audio, subtitles) move by the same amount; a packet that ends before
  the first frame is dropped;
- a container that cannot store a variable frame rate (AVI, MPEG-PS) counts in frames:
  time base 1/rate, as ffmpeg does for them.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

__all__ = ["DEFAULT_RATE", "OutputClock", "counts_frames"]

DEFAULT_RATE = Fraction(25)  # ffmpeg's guess for a stream that gives none
MAX_JUMP_S = 30 * 3600  # a larger jump is a broken timestamp, not a gap (ffmpeg's -dts_error_threshold)
VARIABLE_FPS = 0x0400  # AVFMT_VARIABLE_FPS
NOTIMESTAMPS = 0x0080  # AVFMT_NOTIMESTAMPS


def counts_frames(container: Any) -> bool:
    """Whether an output container needs a constant frame rate (no AVFMT_VARIABLE_FPS, or
    no timestamps at all): AVI, MPEG-PS, MXF, raw streams."""
    flags = int(container.format.flags)
    return not flags & VARIABLE_FPS or bool(flags & NOTIMESTAMPS)


class OutputClock:
    """Timestamps and durations of the frames written, in :attr:`time_base` ticks, and
    the shift of the copied packets (see the module's rule)."""

    def __init__(self, time_base: Fraction, rate: Fraction | None, cfr: bool = False) -> None:
        self.rate = rate if rate and rate > 0 else DEFAULT_RATE
        self.cfr = cfr
        self.time_base = 1 / self.rate if cfr else time_base
        self.step = 1 if cfr else max(1, round(1 / (self.rate * self.time_base)))
        self.origin: Fraction | None = None  # source seconds of the first frame
        self.last: int | None = None  # pts of the last frame written
        self._prev: int | None = None  # and of the one before it
        self._next: dict[int, int] = {}  # pts -> pts of the frame shown after it
        self._last_duration: int | None = None

    def _ticks(self, value: int | None, tb: Fraction | None) -> int | None:
        if not value or not tb:
            return None
        return max(1, round(Fraction(value) * tb / self.time_base)) if not self.cfr else 1

    def _step(self, own: int | None) -> int:
        """The step after the last frame: the frame's own duration, else the last
        interval, else the frame rate's."""
        if own:
            return own
        if self.last is not None and self._prev is not None and self.last > self._prev:
            return self.last - self._prev
        return self.step

    def frame(self, pts: int | None, time_base: Fraction | None, duration: int | None = None) -> int:
        """The output pts of the next frame (source ``pts`` and ``duration`` in ``time_base``)."""
        own = self._ticks(duration, time_base)
        step = self._step(own)
        if pts is None or not time_base:
            out = 0 if self.last is None else self.last + step
            if self.origin is None:
                self.origin = Fraction(0)
        else:
            t = Fraction(pts) * time_base
            if self.origin is None:
                self.origin = t - (self.last + step) * self.time_base if self.last is not None else t
            out = round((t - self.origin) / self.time_base)
            if self.last is not None and not 0 < (out - self.last) * self.time_base <= MAX_JUMP_S:
                out = self.last + step
        if self.last is not None:
            self._next[self.last] = out
        self._prev, self.last = self.last, out
        self._last_duration = own
        return out

    def duration(self, pts: int | None, final: bool = False) -> tuple[bool, int | None]:
        """(known, duration) of the packet of the frame at ``pts``: until the next frame
        shown; the last frame's only once ``final`` (the end of the stream)."""
        if pts is None:
            return True, None
        nxt = self._next.pop(pts, None)
        if nxt is not None:
            return True, nxt - pts
        if pts != self.last:
            return True, None
        if not final:
            return False, None
        last_step = self.last - self._prev if self._prev is not None else self.step
        return True, self._last_duration or last_step

    def shift(self, packet: Any) -> bool:
        """Move a copied packet onto the output clock; False: it ends before the first
        frame, or (a frame-counting container, which cannot start before 0) it starts
        before it: drop it."""
        tb = packet.time_base
        if not tb:
            return True
        offset = round(self.origin / tb) if self.origin else 0
        if packet.pts is not None:
            packet.pts -= offset
        if packet.dts is not None:
            packet.dts -= offset
        start = packet.pts if packet.pts is not None else packet.dts
        return start is None or start + (0 if self.cfr else packet.duration or 0) >= 0
