"""CPU temporal-consistency smoother (numpy + OpenCV), filter v3 (see :mod:`.core`).

Only the low band of the frame is taken from the past: on half-size frames (2x2
means) the previous *derained* frame is warped onto the current one with optical flow,
and the weighted difference is upsampled bilinearly and added to the full-resolution
derained frame::

    out_t = D_t + up(w * (warp(low(D_{t-1}), flow_b) - low(D_t)))

so the current frame's high frequencies (texture, edges, fine detail) are always its
own. ``w`` is ~0 wherever the network removed no rain that is new in the input, where
the flow is inconsistent, where the warped frame differs by more than the removed rain
explains (moving objects, occlusions) and at frame borders; and the change at a pixel
is bounded by the rain removed there. Flow and its forward-backward confidence come
from :class:`~.core.MotionAnalyser` at 1/``scale`` resolution. Scene cuts and
:meth:`reset` drop the history, so the next output is the derained frame itself.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ..errors import InputError
from .core import (
    DEFAULT_STRENGTH,
    MotionAnalyser,
    SmootherConfig,
    base_grid,
    blend_weight,
    box_downscale,
    opencv_threads,
)

log = logging.getLogger(__name__)
INV255 = np.float32(1 / 255)


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


def channel_max(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> HxW uint8 maximum over the channels."""
    a, b, c = cv2.split(img)
    return cv2.max(cv2.max(a, b), c)


def half_size(h: int, w: int) -> tuple[int, int]:
    """(h, w) of the weight maps: half resolution, at least 1x1."""
    return max(h // 2, 1), max(w // 2, 1)


def removed_rain(rainy_half: np.ndarray, derained_half: np.ndarray, blur: int) -> np.ndarray:
    """Half-size uint8 map of the rain removed: box blur (``blur`` pixels) of the channel
    maximum of ``max(rainy - derained, 0)`` (half-size frames)."""
    return cv2.blur(channel_max(cv2.subtract(rainy_half, derained_half)), (blur, blur))


def arrived_rain(rainy_half: np.ndarray, prev_warped: np.ndarray, dilate: int, blur: int) -> np.ndarray:
    """Half-size uint8 map of the light that arrived in the input: box blur of the channel
    maximum of ``max(rainy - dilate(warp(previous rainy)), 0)`` (half-size frames; the
    dilation tolerates misaligned flow on static bright structure)."""
    if dilate > 1:
        prev_warped = cv2.dilate(prev_warped, np.ones((dilate, dilate), np.uint8))
    return cv2.blur(channel_max(cv2.subtract(rainy_half, prev_warped)), (blur, blur))


def pool_mean3(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> half-size 2x2 means (the top-left even crop)."""
    hh, wh = half_size(*img.shape[:2])
    if (hh, wh) == img.shape[:2]:
        return np.ascontiguousarray(img)
    return cv2.resize(img[:2 * hh, :2 * wh], (wh, hh), interpolation=cv2.INTER_AREA)


def to_unit(m: np.ndarray) -> np.ndarray:
    """uint8 map -> float32 in [0, 1]."""
    return np.multiply(m, INV255, dtype=np.float32)


class TemporalSmoother:
    """Temporal smoother for HxWx3 uint8 RGB frames on the CPU.

    ``strength`` in [0, 1] (0 = off: frames pass through). ``**tuning`` sets the other
    fields of :class:`~.core.SmootherConfig`. Not thread-safe: one instance per stream.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, **tuning: float) -> None:
        self.cfg = SmootherConfig.build(strength, tuning)
        self.analyser = MotionAnalyser(self.cfg)
        self.grid_half: np.ndarray | None = None  # hxwx2 pixel coordinates of the half-size maps
        self.shape: tuple[int, ...] | None = None  # of the previous derained frame
        self.prev: np.ndarray | None = None  # previous derained frame, half-size
        self.prev_rainy: np.ndarray | None = None  # the previous rainy frame, half-size
        self.resets = 0  # scene cuts and explicit resets seen (for logs and tests)

    def reset(self) -> None:
        """Forget the history (stream discontinuity): the next output is its derained frame."""
        self.analyser.reset()
        self.prev = self.prev_rainy = None
        self.resets += 1

    def __call__(self, derained: np.ndarray, rainy: np.ndarray) -> np.ndarray:
        """Smoothed HxWx3 uint8 RGB frame from the current derained and rainy frames."""
        check_frame(derained, "derained")
        check_frame(rainy, "rainy")
        if self.cfg.strength <= 0.0:
            return derained
        h, w = derained.shape[:2]
        if self.prev is not None and self.shape != derained.shape:
            log.info("frame size changed to %dx%d: smoother history dropped", w, h)
            self.reset()
        self.shape = derained.shape
        with opencv_threads(self.cfg.cv_threads):
            return self._step(derained, rainy)

    def _step(self, derained: np.ndarray, rainy: np.ndarray) -> np.ndarray:
        derained_half, rainy_half = pool_mean3(derained), pool_mean3(rainy)
        result = self.analyser.analyse(box_downscale(derained, self.cfg.scale))
        if self.prev is None:
            out = derained
        elif result is None:
            out = derained
            self.resets += 1
        else:
            out = self.blend(derained, derained_half, rainy_half, *result)
        self.prev, self.prev_rainy = derained_half, rainy_half
        return out

    def blend(self, derained: np.ndarray, derained_half: np.ndarray, rainy_half: np.ndarray,
              flow_b: np.ndarray, fb: np.ndarray) -> np.ndarray:
        """Warp the previous half-size derained frame by ``flow_b`` (hxwx2, small), weight
        its difference from the current one with :func:`~.core.blend_weight` (half-size
        maps), upsample that low-band correction and add it to ``derained``: HxWx3 uint8."""
        cfg = self.cfg
        h, w = derained.shape[:2]
        hh, wh = derained_half.shape[:2]
        if self.grid_half is None or self.grid_half.shape[:2] != (hh, wh):
            self.grid_half = pixel_grid(hh, wh)
        coords = cv2.add(self.grid_half, upsample_flow(flow_b, hh, wh))
        map1, map2 = cv2.convertMaps(coords, None, cv2.CV_16SC2)  # fixed point: faster remap
        warped = cv2.remap(self.prev, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        prev_rainy = cv2.remap(self.prev_rainy, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        arrived = arrived_rain(rainy_half, prev_rainy, cfg.rain_dilate, cfg.photo_blur)
        removed = removed_rain(rainy_half, derained_half, cfg.photo_blur)
        box = (cfg.photo_blur, cfg.photo_blur)
        e_max = channel_max(cv2.absdiff(warped, derained_half))
        e, e_up = cv2.blur(e_max, box), cv2.blur(channel_max(cv2.subtract(warped, derained_half)), box)
        fb_half = fb if fb.shape == (hh, wh) else cv2.resize(fb, (wh, hh), interpolation=cv2.INTER_LINEAR)
        a = blend_weight(np, to_unit(e), to_unit(e_max), to_unit(e_up), to_unit(removed), to_unit(arrived),
                         fb_half, cfg)
        corr = cv2.multiply(cv2.subtract(warped, derained_half, dtype=cv2.CV_32F),
                            cv2.merge([a.astype(np.float32)] * 3))
        if (hh, wh) != (h, w):
            corr = cv2.resize(corr, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.add(derained, corr, dtype=cv2.CV_8U)
