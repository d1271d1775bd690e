"""What the CPU and the torch temporal smoothers share: configuration, low-resolution
motion analysis, and the per-pixel blend weight.

The filter (v2) takes from the past only the flicker the derainer leaves, and keeps
the current frame's detail::

    out_t = D_t + w * (warp(D_{t-1}, flow_b) - D_t)

with ``D`` the per-frame *derained* frames (never the smoothed output: no recursion,
so warp blur cannot compound) and ``w`` a per-pixel weight that is ~0 wherever the
network removed no rain that is new in the input since the previous frame. Rain moves
from frame to frame while the scene follows the flow, so where new rain was removed at
t the warped previous frame is a rain-free estimate of the same scene point, and mixing
it in cancels the remnant rain (and over-removal) that makes per-frame output flicker.
Elsewhere the frame passes unchanged (to a level): clean video, moving objects and
fine texture keep the current frame.

At 1/``scale`` resolution, on the CPU with OpenCV (:class:`MotionAnalyser`):

1. Box-downscale the derained frame and take its luma; scene-cut test against the
   previous one (thumbnail mean absolute difference and 32-bin histogram correlation).
2. DIS optical flow (``PRESET_ULTRAFAST``) both ways: ``flow_b`` (current -> previous)
   and ``flow_f``; forward-backward confidence
   ``exp(-(|flow_b + flow_f(x + flow_b)|^2 / tol^2)^2)``, ``tol^2 = fb_tol^2 + 0.01
   (|flow_b|^2 + |flow_f(warped)|^2)``, zero where ``x + flow_b`` leaves the frame,
   eroded 3x3. The history is dropped (as at a cut) when less than ``min_confident`` of
   the frame has consistent flow and a warped previous luma within ``cut_photo``.

The weight (:func:`blend_weight`, the same arithmetic in numpy and torch) is computed on
half-size maps in [0, 1], from full-resolution differences:

- ``r_t``: the rain removed now, box blur (``photo_blur``) of the 2x2 means of the
  channel maximum of ``max(rainy_t - D_t, 0)``;
- ``a_t``: the light that arrived in the *input* since the previous frame, box blur of
  the channel maximum of ``max(rainy_t - dilate(warp(rainy_{t-1})), 0)`` (half size;
  the ``rain_dilate`` square tolerates misaligned flow on static bright structure);
- ``new = min(r_t, a_t)``: rain the network removed that was not there before. Structure
  the network removes in every frame (thin bright detail, a veil, a brightness shift)
  is in both inputs and gives ``new = 0``;
- photometric agreement ``exp(-(e / (photo_sigma + rain_relax * new))^4)`` with ``e`` the
  blurred 2x2 means of the full-resolution channel maximum of ``|warp(D_{t-1}) - D_t|``:
  changes that the new rain does not explain (moving objects the flow missed,
  occlusions) take the current frame;
- ``w = strength * fb * photo * new / (new + rain_eps)`` (``fb`` upsampled to half size),
  capped so that the change ``w * e_max`` stays below ``bound_gain * new + bound_margin``,
  ``e_max`` being the 2x2 *maxima* of that full-resolution difference: the smoother
  never alters a pixel by more than the new rain removed there (plus a level), and a
  misaligned fine edge lowers the weight of its whole 2x2 cell;
- the weight is upsampled bilinearly to full resolution for the blend.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)
DEFAULT_STRENGTH = 1.0  # measured on the video benchmark (docs/smoother.md)


@dataclass(frozen=True)
class SmootherConfig:
    """Tuning of the temporal smoother (``**tuning`` of the smoother constructors)."""

    strength: float = DEFAULT_STRENGTH  # largest weight of the warped previous frame; 0 = off
    scale: int = 4  # flow and forward-backward confidence at 1/scale resolution
    photo_blur: int = 3  # box blur (half-resolution pixels) of the error and removed-rain maps
    photo_sigma: float = 0.03  # error (in [0, 1]) where photometric confidence is e^-1 ...
    rain_relax: float = 3.0  # ... plus this times the new rain removed at the pixel
    rain_eps: float = 0.03  # new rain (in [0, 1]) at which the weight is half its largest
    rain_dilate: int = 3  # rain arrived where the input is brighter than the warped previous input's
    # maximum over this square (half-res pixels): a tolerance for flow misalignment
    bound_gain: float = 3.0  # the change at a pixel is at most bound_gain * new removed rain ...
    bound_margin: float = 0.004  # ... plus this (1 level)
    fb_tol: float = 1.0  # forward-backward flow mismatch tolerance, small-frame pixels
    cut_mad: float = 0.12  # scene cut when thumbnails differ by more than this (luma in [0, 1]) ...
    cut_hist: float = 0.5  # ... or their luma histograms correlate less than this
    min_confident: float = 0.05  # reset when fewer pixels than this fraction have consistent flow ...
    cut_photo: float = 0.1  # ... and a warped previous luma within this (in [0, 1]) of the current one
    flow_finest: int = 1  # DIS finest pyramid level on the small frames (ULTRAFAST's own: 2)
    flow_refine: int = 5  # DIS variational refinement iterations (ULTRAFAST's own: 0)
    cv_threads: int = 1  # OpenCV threads during a call; 0 keeps OpenCV's setting (its pool
    # costs more CPU than it saves on frames this small, and the other stages need the cores)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"smoother strength must be in [0, 1], got {self.strength}")
        if self.scale < 1:
            raise ConfigError(f"smoother scale must be >= 1, got {self.scale}")
        if self.photo_sigma <= 0 or self.fb_tol <= 0 or self.rain_eps <= 0:
            raise ConfigError("smoother photo_sigma, fb_tol and rain_eps must be positive")
        if self.photo_blur < 1 or self.bound_gain < 0 or self.bound_margin < 0:
            raise ConfigError("smoother photo_blur must be >= 1, bound_gain and bound_margin >= 0")

    @classmethod
    def build(cls, strength: float, tuning: dict[str, float]) -> SmootherConfig:
        names = {f.name for f in fields(cls)} - {"strength"}
        unknown = sorted(set(tuning) - names)
        if unknown:
            raise ConfigError(f"unknown smoother tuning key(s): {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(names))}")
        return cls(strength=float(strength), **tuning)


def blend_weight(xp: Any, e: Any, e_max: Any, e_up: Any, r_t: Any, a_t: Any, fb: Any,
                 cfg: SmootherConfig) -> Any:
    """Weight of the warped previous frame (module docstring). ``xp`` is ``numpy`` or
    ``torch``; all maps are hxw float32 in [0, 1] on the half-size frames: ``e`` the
    blurred and ``e_max`` the unblurred channel-maximum difference |warp(D_{t-1}) - D_t|,
    ``e_up`` the blurred channel maximum of ``max(warp(D_{t-1}) - D_t, 0)`` (where the
    blend would brighten), ``r_t`` the rain removed now, ``a_t`` the rain that arrived in
    the input since the previous frame, ``fb`` the flow confidence."""
    new = xp.minimum(r_t, a_t)  # removed now, and new in the input: rain that moved in
    q = e / (cfg.photo_sigma + cfg.rain_relax * new)
    q = q * q
    u = e_up * (1.0 / cfg.photo_sigma)  # brightening: never relaxed (remnant rain is bright)
    u = u * u
    photo = xp.exp(-(q * q + u * u))
    w = (cfg.strength * fb) * photo * (new / (new + cfg.rain_eps))
    cap = (cfg.bound_gain * new + cfg.bound_margin) / (e_max + 1e-4)
    return xp.minimum(w, cap)


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

    def analyse(self, cur_small: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(flow_b hxwx2, fb confidence hxw) float32 for the current small hxwx3 uint8 RGB
        derained frame, or None when there is no usable history (first frame, after
        reset, scene cut, or too little area with consistent flow)."""
        cur_luma = luma(cur_small)
        prev, self.prev_luma = self.prev_luma, cur_luma
        if prev is None or prev.shape != cur_luma.shape:
            return None
        if is_scene_cut(prev, cur_luma, self.cfg):
            return None
        h, w = cur_luma.shape
        if self.grid is None or self.grid[0].shape != (h, w):
            self.grid = base_grid(h, w)
        flow_b = self.dis.calc(cur_luma, prev, None)
        flow_f = self.dis.calc(prev, cur_luma, None)
        conf = self.fb_confidence(flow_b, flow_f)
        gx, gy = self.grid
        warped = cv2.remap(prev, gx + flow_b[..., 0], gy + flow_b[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        agree = cv2.absdiff(warped, cur_luma) < 255 * self.cfg.cut_photo
        if float(((conf > 0.5) & agree).mean()) < self.cfg.min_confident:
            log.debug("too little area where the flow is consistent and the frames agree: history dropped")
            return None
        return flow_b, conf

    def fb_confidence(self, flow_b: np.ndarray, flow_f: np.ndarray) -> np.ndarray:
        """hxw float32 in [0, 1]: forward-backward consistency, zero outside the frame, eroded."""
        gx, gy = self.grid
        mx, my = gx + flow_b[..., 0], gy + flow_b[..., 1]
        f_w = cv2.remap(flow_f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mismatch = ((flow_b + f_w) ** 2).sum(axis=2)
        tol2 = self.cfg.fb_tol ** 2 + 0.01 * ((flow_b ** 2).sum(axis=2) + (f_w ** 2).sum(axis=2))
        conf = np.exp(-((mismatch / tol2) ** 2))
        h, w = flow_b.shape[:2]
        conf *= (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
        return cv2.erode(conf.astype(np.float32), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
