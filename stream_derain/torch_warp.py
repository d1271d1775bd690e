"""Backward warps of device tensors by flows computed on the host (torch).

The GPU smoother (:mod:`.smooth.gpu`) and the device infer stage (:mod:`.stages`, a
multi-frame model whose window is flow-aligned) compute optical flow with OpenCV on the
host, at a reduced size, and warp the full-resolution frames where they already are:
``out(x) = img(x + flow(x))``, bilinear, border replicated, as :func:`.align.warp` does
with ``cv2.remap`` (the two differ by OpenCV's fixed-point interpolation only). torch is
passed in: this module imports nothing heavy.
"""

from __future__ import annotations

from typing import Any


class TorchWarp:
    """Warps and resizes on ``device``; the pixel grids are made once per size."""

    def __init__(self, torch: Any, device: Any) -> None:
        self.torch, self.device = torch, device
        self.F = torch.nn.functional
        self.grids: dict[tuple[int, int], Any] = {}  # 1xhxwx2 pixel coordinates (x, y) per size

    def grid(self, h: int, w: int) -> Any:
        """1xhxwx2 pixel coordinates (x, y), cached per size."""
        torch = self.torch
        if (h, w) not in self.grids:
            gy, gx = torch.meshgrid(torch.arange(h, device=self.device, dtype=torch.float32),
                                    torch.arange(w, device=self.device, dtype=torch.float32), indexing="ij")
            self.grids[(h, w)] = torch.stack([gx, gy], dim=-1)[None]
        return self.grids[(h, w)]

    def resize(self, m: Any, h: int, w: int) -> Any:
        """NxCxh'xw' -> NxCxhxw bilinear (OpenCV's INTER_LINEAR sampling)."""
        if tuple(m.shape[2:]) == (h, w):
            return m
        return self.F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)

    def warp(self, img: Any, flow: Any) -> Any:
        """Backward warp of NxCxhxw float ``img`` by Nx2xh'xw' ``flow`` in pixels of its own
        size (resized to hxw and rescaled)."""
        h, w = img.shape[2:]
        sh, sw = flow.shape[2:]
        gain = self.torch.tensor([w / sw, h / sh], device=self.device).view(1, 2, 1, 1)
        f = self.resize(flow, h, w) * gain
        coords = self.grid(h, w) + f.permute(0, 2, 3, 1)
        scale = self.torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=self.device)
        return self.F.grid_sample(img, coords * scale - 1.0, mode="bilinear", padding_mode="border",
                                  align_corners=True)
