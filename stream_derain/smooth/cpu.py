"""CPU temporal-consistency smoother (numpy + OpenCV).

A motion-compensated recursive filter: the previous *smoothed* output is warped onto
the current frame with optical flow and blended into the current per-frame derained
frame with a per-pixel weight ``alpha`` in [0, strength]::

    out_t = derained_t + alpha * (warp(out_{t-1}, flow_b) - derained_t)

``alpha`` is ~``strength`` where the flow is forward-backward consistent and the warped
history agrees with the current frame, and ~0 at occlusions, disocclusions, moving
objects the flow missed and frame borders, which therefore take the current frame
(no ghost trails). Flow and confidence come from :class:`~.core.MotionAnalyser` at
1/``scale`` resolution; only the flow/alpha upsampling, the warp and the blend run at
full resolution. Scene cuts and :meth:`reset` drop the history, so the next output is
the derained frame itself.

The rainy input frame tells where the network removed rain: there the photometric
tolerance is raised (``rain_relax``), since what still changes between frames at
those pixels is more likely remnant rain than motion.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ..errors import InputError
from .core import DEFAULT_STRENGTH, MotionAnalyser, SmootherConfig, base_grid, box_downscale, opencv_threads

log = logging.getLogger(__name__)


def check_frame(frame: np.ndarray, name: str) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(f"smoother expects HxWx3 uint8 {name} frames, got {frame.shape} {frame.dtype}")


def upsample_flow(flow: np.ndarray, h: int, w: int) -> np.ndarray:
    """hxwx2 small-frame flow -> HxWx2 full-resolution flow (rescaled, then bilinear)."""
    sh, sw = flow.shape[:2]
    if (sh, sw) == (h, w):
        return flow
    scaled = flow * np.array([w / sw, h / sh], np.float32)
    return cv2.resize(scaled, (w, h), interpolation=cv2.INTER_LINEAR)


def pixel_grid(h: int, w: int) -> np.ndarray:
    """HxWx2 float32 pixel coordinates (x, y)."""
    gx, gy = base_grid(h, w)
    return np.dstack([gx, gy])


class TemporalSmoother:
    """Temporal smoother for HxWx3 uint8 RGB frames on the CPU.

    ``strength`` in [0, 1] (0 = off: frames pass through). ``**tuning`` sets the other
    fields of :class:`~.core.SmootherConfig`. Not thread-safe: one instance per stream.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, **tuning: float) -> None:
        self.cfg = SmootherConfig.build(strength, tuning)
        self.analyser = MotionAnalyser(self.cfg)
        self.grid: np.ndarray | None = None  # HxWx2 pixel coordinates
        self.prev_out: np.ndarray | None = None
        self.prev_out_small: np.ndarray | None = None
        self.resets = 0  # scene cuts and explicit resets seen (for logs and tests)

    def reset(self) -> None:
        """Forget the history (stream discontinuity): the next output is its derained frame."""
        self.analyser.reset()
        self.prev_out = self.prev_out_small = None
        self.resets += 1

    def __call__(self, derained: np.ndarray, rainy: np.ndarray) -> np.ndarray:
        """Smoothed HxWx3 uint8 RGB frame from the current derained and rainy frames."""
        check_frame(derained, "derained")
        check_frame(rainy, "rainy")
        if self.cfg.strength <= 0.0:
            return derained
        h, w = derained.shape[:2]
        if self.prev_out is not None and self.prev_out.shape != derained.shape:
            log.info("frame size changed to %dx%d: smoother history dropped", w, h)
            self.reset()
        with opencv_threads(self.cfg.cv_threads):
            return self._step(derained, rainy)

    def _step(self, derained: np.ndarray, rainy: np.ndarray) -> np.ndarray:
        had_history = self.prev_out is not None
        rainy_small = box_downscale(rainy, self.cfg.scale) if self.cfg.rain_relax > 0 else None
        result = self.analyser.analyse(box_downscale(derained, self.cfg.scale), self.prev_out_small,
                                       rainy_small)
        if result is None:
            out = derained
            if had_history:
                self.resets += 1
        else:
            out = self.blend(derained, *result)
        self.prev_out = out
        self.prev_out_small = box_downscale(out, self.cfg.scale)
        return out

    def blend(self, derained: np.ndarray, flow_b: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Warp the previous output by ``flow_b`` (hxwx2, small) and blend with weight
        ``alpha`` (hxw, small), both upsampled to HxW: HxWx3 uint8."""
        h, w = derained.shape[:2]
        if self.grid is None or self.grid.shape[:2] != (h, w):
            self.grid = pixel_grid(h, w)
        coords = cv2.add(self.grid, upsample_flow(flow_b, h, w))
        map1, map2 = cv2.convertMaps(coords, None, cv2.CV_16SC2)  # fixed point: faster remap
        warped = cv2.remap(self.prev_out, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        a = alpha if alpha.shape == (h, w) else cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.blendLinear(warped, derained, a, np.float32(1.0) - a)
