"""Low-resolution motion analysis shared by the CPU and the torch temporal smoothers.

Both smoothers do the same cheap work on the CPU at 1/``scale`` resolution, with
numpy and OpenCV, and differ only in where the full-resolution warp and blend run:

1. Box-downscale the current derained frame (exact ``scale`` x ``scale`` means of the
   top-left ``scale``-aligned crop) and take its luma (OpenCV's BT.601 weights).
2. Scene-cut test against the previous frame: mean absolute difference of 1/4-size
   thumbnails of those luma images, and the correlation of their 32-bin histograms.
3. DIS optical flow (``DISOPTICAL_FLOW_PRESET_ULTRAFAST``) both ways between the
   previous and the current small luma: ``flow_b`` (current -> previous, used to warp
   the previous output onto the current frame) and ``flow_f`` (previous -> current).
4. Per-pixel confidence, the product of
   - forward-backward consistency: ``exp(-(|flow_b + flow_f(x + flow_b)|^2 / tol^2)^2)`` with
     ``tol^2 = fb_tol^2 + 0.01 (|flow_b|^2 + |flow_f(warped)|^2)`` (small-pixel units), so
     occluded and disoccluded pixels get ~0;
   - photometric agreement: ``exp(-(e / photo_sigma)^4)`` where ``e`` is the largest
     absolute per-channel RGB difference (in [0, 1]) between the previous *smoothed
     output* warped by ``flow_b`` and the current derained frame, after a ``photo_blur`` box blur
     (RGB, not luma: an object and the background it uncovers often share a luma),
     so pixels that changed (moving objects the flow missed, lighting changes) take the current frame
     (the 4th power keeps small differences, the flicker to remove, at ~1 and cuts off
     larger ones sharply); ``photo_sigma`` grows by ``rain_relax`` times the brightness
     the network removed at that pixel (rainy minus derained), because remnant rain is
     found where rain was removed, while a moving object is not changed by the network;
   - zero where ``x + flow_b`` falls outside the previous frame.
   The map is eroded (3x3 minimum) so that low confidence also covers the blurred
   border that bilinear upsampling gives it, and multiplied by ``strength``.

The result (``flow_b`` and ``alpha``, both small) is upsampled bilinearly to full
resolution by the caller, which then computes
``out = derained + alpha * (warp(prev_out, flow_b) - derained)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import cv2
import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)
DEFAULT_STRENGTH = 0.8  # tuned on the synthetic video benchmark and real clips (docs/smoother.md)


@dataclass(frozen=True)
class SmootherConfig:
    """Tuning of the temporal smoother (``**tuning`` of the smoother constructors)."""

    strength: float = DEFAULT_STRENGTH  # blend weight of warped history at fully confident pixels; 0 = off
    scale: int = 4  # flow and confidence are computed at 1/scale resolution
    photo_blur: int = 3  # box blur (small-frame pixels) of the photometric error
    photo_sigma: float = 0.08  # RGB error (in [0, 1]) where photometric confidence is e^-1
    rain_relax: float = 1.0  # photo_sigma grows by this times the rain the network removed there
    fb_tol: float = 1.0  # forward-backward flow mismatch tolerance, small-frame pixels
    cut_mad: float = 0.12  # scene cut when thumbnails differ by more than this (luma in [0, 1]) ...
    cut_hist: float = 0.5  # ... or their luma histograms correlate less than this
    min_confident: float = 0.05  # reset when fewer pixels than this fraction are confident (> 0.5)
    flow_finest: int = 1  # DIS finest pyramid level on the small frames (ULTRAFAST's own: 2)
    flow_refine: int = 5  # DIS variational refinement iterations (ULTRAFAST's own: 0)
    cv_threads: int = 1  # OpenCV threads during a call; 0 keeps OpenCV's setting. On frames
    # this small its thread pool costs more CPU than it saves, and the pipeline's other
    # stages need the cores (2-core CPU: 5.5 vs 8-12 ms of CPU per 640x360 frame)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"smoother strength must be in [0, 1], got {self.strength}")
        if self.scale < 1:
            raise ConfigError(f"smoother scale must be >= 1, got {self.scale}")
        if self.photo_sigma <= 0 or self.fb_tol <= 0:
            raise ConfigError("smoother photo_sigma and fb_tol must be positive")

    @classmethod
    def build(cls, strength: float, tuning: dict[str, float]) -> SmootherConfig:
        names = {f.name for f in fields(cls)} - {"strength"}
        unknown = sorted(set(tuning) - names)
        if unknown:
            raise ConfigError(f"unknown smoother tuning key(s): {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(names))}")
        return cls(strength=float(strength), **tuning)


@contextmanager
def opencv_threads(n: int) -> Iterator[None]:
    """OpenCV's thread count set to ``n`` (0: unchanged) for the block, then restored."""
    if n <= 0:
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def small_size(h: int, w: int, scale: int) -> tuple[int, int]:
    """(h, w) of the analysis frames; at least 8x8 (smaller frames use scale 1)."""
    return max(h // scale, min(h, 8)), max(w // scale, min(w, 8))


def box_downscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """HxWx3 uint8 -> (H//s)x(W//s)x3 uint8, exact box means of the s-aligned crop."""
    h, w = rgb.shape[:2]
    if scale == 1 or h // scale < 8 or w // scale < 8:
        return np.ascontiguousarray(rgb)
    hs, ws = h // scale, w // scale
    return cv2.resize(rgb[:hs * scale, :ws * scale], (ws, hs), interpolation=cv2.INTER_AREA)


def luma(rgb_small: np.ndarray) -> np.ndarray:
    """hxwx3 uint8 RGB -> hxw uint8 luma (BT.601)."""
    return cv2.cvtColor(rgb_small, cv2.COLOR_RGB2GRAY)


def base_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-coordinate grids (x, y), each hxw float32."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx, gy


def is_scene_cut(prev: np.ndarray, cur: np.ndarray, cfg: SmootherConfig) -> bool:
    """Whether two hxw uint8 luma frames belong to different shots."""
    th, tw = min(prev.shape[0], max(prev.shape[0] // 4, 12)), min(prev.shape[1], max(prev.shape[1] // 4, 16))
    a = cv2.resize(prev, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)
    b = cv2.resize(cur, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)
    mad = float(np.abs(a - b).mean()) / 255.0
    ha = cv2.calcHist([prev], [0], None, [32], [0, 256])
    hb = cv2.calcHist([cur], [0], None, [32], [0, 256])
    corr = float(cv2.compareHist(ha, hb, cv2.HISTCMP_CORREL))
    cut = mad > cfg.cut_mad or corr < cfg.cut_hist
    if cut:
        log.debug("scene cut: thumbnail MAD %.3f, histogram correlation %.3f", mad, corr)
    return cut


class MotionAnalyser:
    """Stateful low-resolution analysis: one call per frame, see the module docstring."""

    def __init__(self, cfg: SmootherConfig) -> None:
        self.cfg = cfg
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.dis.setFinestScale(int(cfg.flow_finest))
        self.dis.setVariationalRefinementIterations(int(cfg.flow_refine))
        self.grid: tuple[np.ndarray, np.ndarray] | None = None
        self.prev_luma: np.ndarray | None = None

    def reset(self) -> None:
        self.prev_luma = None

    def analyse(self, cur_small: np.ndarray, prev_out_small: np.ndarray | None,
                rainy_small: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow_b hxwx2, alpha hxw) float32 for the current small hxwx3 uint8 RGB frame, or
        None when there is no usable history (first frame, after reset, scene cut, or too
        little confident area). ``prev_out_small`` is the small previous output and
        ``rainy_small`` the small rainy input frame (optional; see ``rain_relax``)."""
        cur_luma = luma(cur_small)
        prev, self.prev_luma = self.prev_luma, cur_luma
        if prev is None or prev_out_small is None or prev.shape != cur_luma.shape:
            return None
        if is_scene_cut(prev, cur_luma, self.cfg):
            return None
        h, w = cur_luma.shape
        if self.grid is None or self.grid[0].shape != (h, w):
            self.grid = base_grid(h, w)
        flow_b = self.dis.calc(cur_luma, prev, None)
        flow_f = self.dis.calc(prev, cur_luma, None)
        alpha = self.confidence(flow_b, flow_f, cur_small, prev_out_small, rainy_small)
        if float((alpha > 0.5 * self.cfg.strength).mean()) < self.cfg.min_confident:
            log.debug("too little confident area: history dropped")
            return None
        return flow_b, alpha

    def confidence(self, flow_b: np.ndarray, flow_f: np.ndarray, cur: np.ndarray,
                   prev_out: np.ndarray, rainy: np.ndarray | None = None) -> np.ndarray:
        """hxw float32 blend weight in [0, strength] from the flows and the small hxwx3
        uint8 current frame, previous output and rainy input (see the module docstring)."""
        cfg = self.cfg
        gx, gy = self.grid
        mx, my = gx + flow_b[..., 0], gy + flow_b[..., 1]
        f_w = cv2.remap(flow_f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mismatch = ((flow_b + f_w) ** 2).sum(axis=2)
        tol2 = cfg.fb_tol ** 2 + 0.01 * ((flow_b ** 2).sum(axis=2) + (f_w ** 2).sum(axis=2))
        conf = np.exp(-((mismatch / tol2) ** 2))
        warped = cv2.remap(prev_out, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.blur(cv2.absdiff(warped, cur), (cfg.photo_blur, cfg.photo_blur))
        err = diff.max(axis=2).astype(np.float32) * np.float32(1 / 255)
        conf *= np.exp(-(err / self.photo_tolerance(cur, rainy)) ** 4)
        h, w = cur.shape[:2]
        inside = (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
        conf *= inside
        conf = cv2.erode(conf.astype(np.float32), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
        return conf * np.float32(cfg.strength)

    def photo_tolerance(self, cur: np.ndarray, rainy: np.ndarray | None) -> np.ndarray | np.float32:
        """``photo_sigma``, raised by ``rain_relax`` times the brightness the network removed
        (rainy minus derained, blurred like the error): where it took rain away, what is
        left changing between frames is more likely remnant rain than a moving object."""
        sigma = np.float32(self.cfg.photo_sigma)
        if rainy is None or self.cfg.rain_relax <= 0:
            return sigma
        k = (self.cfg.photo_blur, self.cfg.photo_blur)
        removed = cv2.blur(cv2.subtract(rainy, cur), k).max(axis=2).astype(np.float32) * np.float32(1 / 255)
        return sigma + np.float32(self.cfg.rain_relax) * removed
