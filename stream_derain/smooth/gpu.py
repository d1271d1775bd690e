"""Torch temporal-consistency smoother: the CPU smoother's filter on device tensors.

Frames are **3xHxW** tensors (RGB, channel-first, as the torch backend produces them)
on any torch device, uint8 in [0, 255] or float in [0, 1]; the output has the dtype,
shape and device of ``derained`` and never leaves the device.

What runs where (honestly): the motion analysis is the CPU smoother's
(:class:`~.core.MotionAnalyser`: DIS optical flow, forward-backward and photometric
confidence, scene cuts) on 1/``scale``-size luma, done on the CPU with OpenCV. Per frame
this downloads three small frames (the box-downscaled derained frame, the previous
output and, while ``rain_relax`` is on, the rainy frame; (H/s)x(W/s)x3 uint8 each,
43 KB each at 640x360, s = 4) and uploads the small flow
and weight maps. The full-resolution work (flow and weight upsampling, the bilinear
warp with ``grid_sample`` and the blend) runs on the device. The small downloads
synchronise the device once per frame.

Agreement with :class:`~.cpu.TemporalSmoother` on uint8 frames: both feed identical
(up to rounding ties of the box means) small frames to the same analysis, so they
differ only by interpolation arithmetic (OpenCV's fixed-point remap/resize vs float
``grid_sample``/``interpolate``) and the occasional rounding tie: tests require a mean
absolute difference below 0.5 levels and 99.9% of values within 3 levels (of 255).
Float inputs are not re-quantised to 8 bits between frames.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError, require
from .core import DEFAULT_STRENGTH, MotionAnalyser, SmootherConfig, opencv_threads, small_size

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
        self.grid: Any = None  # 1xHxWx2 pixel coordinates (x, y)
        self.prev_out: Any = None  # 3xHxW float32 in [0, 255]
        self.prev_out_small: np.ndarray | None = None
        self.resets = 0

    def reset(self) -> None:
        """Forget the history (stream discontinuity): the next output is its derained frame."""
        self.analyser.reset()
        self.prev_out = self.prev_out_small = None
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

    def __call__(self, derained: Any, rainy: Any) -> Any:
        """Smoothed 3xHxW frame (dtype of ``derained``) from the current derained and rainy
        frames (``rainy``: same dtype convention)."""
        self._check(derained, "derained")
        self._check(rainy, "rainy")
        if self.cfg.strength <= 0.0:
            return derained
        is_u8 = derained.dtype == self.torch.uint8
        x = derained.to(self.device, self.torch.float32)
        if not is_u8:
            x = x * 255.0
        if self.prev_out is not None and self.prev_out.shape != x.shape:
            log.info("frame size changed to %dx%d: smoother history dropped", x.shape[2], x.shape[1])
            self.reset()
        had_history = self.prev_out is not None
        rainy_small = None
        if self.cfg.rain_relax > 0:  # one more small download, only when it is used
            rainy_small = self._small(rainy.to(self.device, self.torch.float32) * (1.0 if is_u8 else 255.0))
        with opencv_threads(self.cfg.cv_threads):
            result = self.analyser.analyse(self._small(x), self.prev_out_small, rainy_small)
        if result is None:
            out = x.round() if is_u8 else x
            self.resets += int(had_history)
        else:
            out = self.blend(x, *result)
            if is_u8:
                out = out.round().clamp(0, 255)
        self.prev_out = out
        self.prev_out_small = self._small(out)
        return out.to(self.torch.uint8) if is_u8 else out * (1.0 / 255.0)

    def blend(self, x: Any, flow_b: np.ndarray, alpha: np.ndarray) -> Any:
        """Warp the previous output by ``flow_b`` (hxwx2 numpy, small) and blend into ``x``
        (3xHxW float [0, 255]) with weight ``alpha`` (hxw numpy, small): 3xHxW float."""
        torch, F = self.torch, self.F
        h, w = x.shape[1:]
        sh, sw = alpha.shape
        flow = torch.from_numpy(flow_b).to(self.device).permute(2, 0, 1)[None]  # 1x2xhxw
        a = torch.from_numpy(alpha).to(self.device)[None, None]  # 1x1xhxw
        if (sh, sw) != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            flow = flow * torch.tensor([w / sw, h / sh], device=self.device).view(1, 2, 1, 1)
            a = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=False)
        if self.grid is None or self.grid.shape[1:3] != (h, w):
            gy, gx = torch.meshgrid(torch.arange(h, device=self.device, dtype=torch.float32),
                                    torch.arange(w, device=self.device, dtype=torch.float32), indexing="ij")
            self.grid = torch.stack([gx, gy], dim=-1)[None]
        coords = self.grid + flow.permute(0, 2, 3, 1)
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=self.device)
        warped = F.grid_sample(self.prev_out[None], coords * scale - 1.0, mode="bilinear",
                               padding_mode="border", align_corners=True)[0]
        return x + a[0] * (warped - x)
