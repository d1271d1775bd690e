"""The GPU frame path: frames go to the device once and stay there through the
engine and the smoother, until the encoder needs them back on the host.

Used when the backend can take device tensors (``infer_tensor``: TensorRT, torch on
CUDA). The stages are the same threads as the host path; only what travels in
``FrameItem.image`` changes (a 3xHxW uint8 tensor on the device). torch is
imported lazily: this module is only loaded for a device backend.
"""

from __future__ import annotations

import queue
from typing import Any

import numpy as np

from .backends.base import Backend, pad_amounts
from .derain import InferStage
from .errors import require
from .io.video import FrameItem
from .pipeline import Stage


class DeviceInferStage(InferStage):
    """Uploads each batch of HxWx3 uint8 frames once, pads to the model's multiple,
    runs ``backend.infer_tensor`` and passes 3xHxW device tensors on."""

    def __init__(self, stop: Any, inq: queue.Queue, outq: queue.Queue, backend: Backend, batch: int,
                 keep_input: bool) -> None:
        super().__init__(stop, inq, outq, backend, batch, keep_input)
        self.torch = require("torch", "train")
        self.device = self.torch.device(backend.device)

    def upload(self, items: list[FrameItem]) -> Any:
        """N frames -> Nx3xHxW uint8 on the device (one host-to-device copy)."""
        host = self.torch.from_numpy(np.stack([it.image for it in items]))
        if self.device.type == "cuda":
            host = host.pin_memory()
        return host.to(self.device, non_blocking=True).permute(0, 3, 1, 2)

    def infer_group(self, group: list[FrameItem]) -> None:
        x = self.upload(group)
        h, w = x.shape[2:]
        ph, pw = pad_amounts(h, w, self.backend.model.multiple)
        xf = x.float().mul_(1.0 / 255.0)
        xp = self.torch.nn.functional.pad(xf, (0, pw, 0, ph), mode="replicate") if ph or pw else xf
        with self.torch.inference_mode():
            y = self.backend.infer_tensor(xp)[:, :, :h, :w].float()
            # 8-bit frames on the device from here on, as on the host path (and 4x less memory)
            y = y.mul_(255.0).round_().clamp_(0, 255).to(self.torch.uint8)
        for i, it in enumerate(group):
            it.rainy = x[i] if self.keep_input else None
            it.image = y[i]


class DownloadStage(Stage):
    """3xHxW device tensors (uint8, or float in [0, 1]) -> HxWx3 uint8 numpy for the encoder."""

    def __init__(self, stop: Any, inq: queue.Queue, outq: queue.Queue) -> None:
        super().__init__("download", stop, inq, outq)
        self.torch = require("torch", "train")

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem) and isinstance(item.image, self.torch.Tensor):
            t = item.image
            if t.dtype != self.torch.uint8:
                t = t.mul(255.0).round_().clamp_(0, 255).to(self.torch.uint8)
            item.image = t.permute(1, 2, 0).contiguous().cpu().numpy()
            item.rainy = None
        return [item]
