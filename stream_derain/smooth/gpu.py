"""Torch temporal-consistency smoother: the CPU smoother's filter (v3, see :mod:`.core`)
on device tensors.

Frames are **3xHxW** tensors (RGB, channel-first, as the torch backend produces them)
on any torch device, uint8 in [0, 255] or float in [0, 1]; the output has the dtype,
shape and device of ``derained`` and never leaves the device.

What runs where (honestly): the motion analysis is the CPU smoother's
(:class:`~.core.MotionAnalyser`: DIS optical flow, forward-backward confidence, scene
cuts) on the 1/``scale``-size luma of the derained frame, done on the CPU with OpenCV.
Per frame this downloads one small frame ((H/s)x(W/s)x3 uint8, 43 KB at 640x360, s = 4)
and uploads the small flow and confidence maps; the download synchronises the device
once per frame. Everything else (the half-size frames, removed-rain maps, flow and
confidence upsampling, the bilinear warp with ``grid_sample``, the photometric test, the
weight of :func:`~.core.blend_weight`, the upsampled low-band correction and its
addition to the full-resolution frame) runs on the device.

Agreement with :class:`~.cpu.TemporalSmoother` on uint8 frames: the same small frames
feed the same analysis, so the two differ only by interpolation and rounding
arithmetic (OpenCV's fixed-point remap/resize and 8-bit maps vs float ``grid_sample``,
``interpolate`` and box filters): tests require a mean absolute difference below 0.5
levels and 99.9% of values within 3 levels (of 255). Float inputs are not
re-quantised to 8 bits.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError, require
from ..torch_warp import TorchWarp
from .core import DEFAULT_STRENGTH, MotionAnalyser, SmootherConfig, blend_weight, opencv_threads, small_size
from .cpu import half_size

log = logging.getLogger(__name__)


class TorchTemporalSmoother:
    """Temporal smoother for 3xHxW torch tensors on ``device`` (see the module docstring).

    ``strength`` in [0, 1] (0 = off); ``**tuning`` sets :class:`~.core.SmootherConfig`."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, device: str = "cuda", **tuning: float) -> None:
        self.torch = require("torch", "train")
        self.F = self.torch.nn.functional
        self.device = self.torch.device(device)
        self.cfg = SmootherConfig.build(strength, tuning)
        self.analyser = MotionAnalyser(self.cfg)
        self.warper = TorchWarp(self.torch, self.device)  # the bilinear warp and resize on the device
        self.shape: tuple[int, ...] | None = None  # of the previous derained frame
        self.prev: Any = None  # previous derained frame, half-size 3xhxw float32 in [0, 255]
        self.prev_rainy: Any = None  # the previous rainy frame, half-size 3xhxw float32 in [0, 255]
        self.resets = 0

    def reset(self) -> None:
        """Forget the history (stream discontinuity): the next output is its derained frame."""
        self.analyser.reset()
        self.prev = self.prev_rainy = None
        self.resets += 1

    def _check(self, frame: Any, name: str) -> None:
        if not isinstance(frame, self.torch.Tensor) or frame.ndim != 3 or frame.shape[0] != 3:
            raise InputError(f"torch smoother expects 3xHxW tensors for {name}, got "
                             f"{getattr(frame, 'shape', type(frame))}")

    def _small(self, x: Any) -> np.ndarray:
        """3xHxW float [0, 255] on the device -> (H/s)x(W/s)x3 uint8 RGB on the CPU."""
        h, w = x.shape[1:]
        hs, ws = small_size(h, w, self.cfg.scale)
        s = h // hs
        small = x if s == 1 else self.F.avg_pool2d(x[None, :, :hs * s, :ws * s], s)[0]
        small_u8 = small.round().clamp(0, 255).to(self.torch.uint8).permute(1, 2, 0).contiguous()
        return small_u8.cpu().numpy()

    def _pool(self, m: Any) -> Any:
        """CxHxW -> Cx(H/2)x(W/2) 2x2 means of the even crop."""
        hh, wh = half_size(*m.shape[1:])
        if (hh, wh) == tuple(m.shape[1:]):
            return m
        crop = m[None, :, :2 * hh, :2 * wh]
        return self.F.avg_pool2d(crop, 2)[0]

    def _box(self, m: Any) -> Any:
        """1xHxW box blur of ``photo_blur`` (border reflected like OpenCV's default)."""
        k = self.cfg.photo_blur
        if k == 1:
            return m
        lo = (k - 1) // 2
        padded = self.F.pad(m[None], (lo, k - 1 - lo, lo, k - 1 - lo), mode="reflect")
        return self.F.avg_pool2d(padded, k, stride=1)[0]

    def __call__(self, derained: Any, rainy: Any) -> Any:
        """Smoothed 3xHxW frame (dtype of ``derained``) from the current derained and rainy
        frames (``rainy``: same dtype convention)."""
        self._check(derained, "derained")
        self._check(rainy, "rainy")
        if self.cfg.strength <= 0.0:
            return derained
        is_u8 = derained.dtype == self.torch.uint8
        gain = 1.0 if is_u8 else 255.0
        x = derained.to(self.device, self.torch.float32) * gain
        if self.prev is not None and self.shape != tuple(x.shape):
            log.info("frame size changed to %dx%d: smoother history dropped", x.shape[2], x.shape[1])
            self.reset()
        self.shape = tuple(x.shape)
        x_half = self._pool(x)
        rainy_half = self._pool(rainy.to(self.device, self.torch.float32) * gain)
        with opencv_threads(self.cfg.cv_threads):
            result = self.analyser.analyse(self._small(x))
        if self.prev is None or result is None:
            self.resets += int(self.prev is not None)
            out = x
        else:
            out = self.blend(x, x_half, rainy_half, *result)
        self.prev, self.prev_rainy = x_half, rainy_half
        if is_u8:
            return out.round().clamp(0, 255).to(self.torch.uint8)
        return out * (1.0 / 255.0)

    def _dilate(self, m: Any) -> Any:
        """CxHxW maximum over a ``rain_dilate`` square (OpenCV's ``dilate``)."""
        k = self.cfg.rain_dilate
        if k <= 1:
            return m
        lo, hi = k // 2, (k - 1) // 2  # OpenCV's anchor: the centre, k // 2
        return self.F.max_pool2d(self.F.pad(m[None], (lo, hi, lo, hi), value=-1e9), k, 1)[0]

    def blend(self, x: Any, x_half: Any, rainy_half: Any, flow_b: np.ndarray, fb: np.ndarray) -> Any:
        """Warp the previous half-size derained frame by ``flow_b`` (hxwx2 numpy, small),
        weight its difference from ``x_half`` with :func:`~.core.blend_weight` and add the
        upsampled correction to ``x`` (3xHxW float [0, 255]), as the CPU smoother: 3xHxW float."""
        torch = self.torch
        h, w = x.shape[1:]
        hh, wh = x_half.shape[1:]
        flow = torch.from_numpy(flow_b).to(self.device).permute(2, 0, 1)[None]  # 1x2xhxw
        conf = self.warper.resize(torch.from_numpy(fb).to(self.device)[None, None], hh, wh)[0]
        warped = self.warper.warp(self.prev[None], flow)[0]
        prev_rainy = self._dilate(self.warper.warp(self.prev_rainy[None], flow)[0])
        arrived = self._box((rainy_half - prev_rainy).clamp(min=0).amax(dim=0, keepdim=True))
        removed = self._box((rainy_half - x_half).clamp(min=0).amax(dim=0, keepdim=True))
        diff = warped - x_half
        e_max = diff.abs().amax(dim=0, keepdim=True)
        e_up = self._box(diff.clamp(min=0).amax(dim=0, keepdim=True))
        k = 1.0 / 255.0
        a = blend_weight(torch, self._box(e_max) * k, e_max * k, e_up * k, removed * k, arrived * k, conf,
                         self.cfg)
        return x + self.warper.resize((a * diff)[None], h, w)[0]
