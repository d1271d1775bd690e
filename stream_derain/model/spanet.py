"""SPANet, a training-time teacher for real-rain appearance (never shipped).

Wang, Yang, Xu, Chen, Zhang and Lau, "Spatial Attentive Single-Image Deraining with a
High Quality Real Rain Dataset", CVPR 2019. This module rebuilds the network so that
the authors' published weights (trained on SPA-Data, real rain; see
``../shared/teachers/spanet/README.md``) load into it strictly; the weights themselves
stay outside the repository.

Conventions differ from the rest of the package: the network takes **BGR** (as
``cv2.imread`` gives) in [0, 1], Bx3xHxW, any H and W (no padding: the spatial RNN
scans whole rows and columns, so run whole frames, not tiles), and returns
(first attention map Bx1xHxW, derained image Bx3xHxW *unclamped*).
:func:`derain_rgb` wraps that for one HxWx3 uint8 RGB frame.

Structure (state-dict names in brackets):

- ``conv_in``: 3x3 conv 3->32 + ReLU;
- 17 bottleneck blocks b_i [``res_block{i}.group1``];
- one spatial-attention module [``SAM1``] applied four times with the same weights:
  blocks 1-3 and 16-17 are x = relu(b(x) + x), blocks 4-15 are
  x = relu(b(x) * A_k + x), A_k = SAM(x) recomputed before blocks 4, 7, 10 and 13;
- ``conv_out``: 3x3 conv 32->3.

About 0.55 M multiply-accumulates per pixel; ~9 s per 640x480 frame on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CHANNELS = 32
BLOCKS = 17
ATTENTION_STARTS = (4, 7, 10, 13)  # the SAM mask is recomputed before these blocks
ATTENTION_SPAN = 3  # blocks gated by each mask


class Bottleneck(nn.Module):
    """1x1 conv -> ReLU -> 3x3 conv (dilation 2) -> ReLU -> 1x1 conv, no biases, no
    activation at the end: BxCxHxW -> BxCxHxW (the residual b(x), without the identity)."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=2, dilation=2, bias=False)
        self.conv3 = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))


class ResBlock(nn.Module):
    """Holds one :class:`Bottleneck` under the published name ``group1``."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.group1 = Bottleneck(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """BxCxHxW -> b(x), BxCxHxW."""
        return self.group1(x)


class IRNN(nn.Module):
    """Four-direction spatial recurrence (identity-initialised RNN): BxCxHxW -> four
    BxCxHxW maps (up, right, down, left).

    Per channel c and direction d, with w = ``{d}_weight.weight[c]`` and
    b = ``{d}_weight.bias[c]`` (stored as depthwise 1x1 convolutions), e.g. "right"
    scans each row left to right: o[0] = relu(f[0]), o[j] = relu(w o[j-1] + b + f[j]).
    "left" scans right to left, "down" top to bottom, "up" bottom to top."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.left_weight = nn.Conv2d(channels, channels, 1, groups=channels)
        self.right_weight = nn.Conv2d(channels, channels, 1, groups=channels)
        self.up_weight = nn.Conv2d(channels, channels, 1, groups=channels)
        self.down_weight = nn.Conv2d(channels, channels, 1, groups=channels)

    @staticmethod
    def scan(f: torch.Tensor, conv: nn.Conv2d, dim: int, reverse: bool) -> torch.Tensor:
        """One direction along ``dim`` (2: rows top-down, 3: columns left-right;
        ``reverse`` flips the order): BxCxHxW -> BxCxHxW. Loops over the scan axis,
        whole rows or columns at a time."""
        c = f.shape[1]
        w = conv.weight.reshape(1, c, 1)
        g = f + conv.bias.reshape(1, c, 1, 1)  # the bias joins every step but the first
        steps_f, steps_g = f.unbind(dim), g.unbind(dim)
        order = range(len(steps_f) - 1, -1, -1) if reverse else range(len(steps_f))
        out: list[torch.Tensor | None] = [None] * len(steps_f)
        prev: torch.Tensor | None = None
        for i in order:
            prev = F.relu(steps_f[i]) if prev is None else F.relu(torch.addcmul(steps_g[i], prev, w))
            out[i] = prev
        return torch.stack(out, dim=dim)  # type: ignore[arg-type]

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.scan(f, self.up_weight, 2, reverse=True),
                self.scan(f, self.right_weight, 3, reverse=False),
                self.scan(f, self.down_weight, 2, reverse=False),
                self.scan(f, self.left_weight, 3, reverse=True))


class AttentionLayer(nn.Module):
    """The published SAM's direction-weighting branch (3x3 conv 32->16, ReLU, 3x3 conv
    16->16, ReLU, 1x1 conv 16->4, sigmoid: BxCxHxW -> Bx4xHxW). Its weights are in the
    state dict but in the published code its result is discarded (the four direction
    features are multiplied by it out of place), so :class:`SAM` never calls it."""

    def __init__(self, channels: int = CHANNELS, hidden: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv3 = nn.Conv2d(hidden, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))


class SAM(nn.Module):
    """Spatial attention: BxCxHxW -> mask Bx1xHxW in (0, 1).

    y = conv_in(x); y = conv2(cat(IRNN_1(y))); y = relu(conv3(cat(IRNN_2(y))));
    mask = sigmoid(conv_out(y)). All convolutions without bias."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.irnn1 = IRNN(channels)
        self.irnn2 = IRNN(channels)
        self.conv_in = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels * 4, channels, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(channels * 4, channels, 3, padding=1, bias=False)
        self.attention_layer = AttentionLayer(channels)  # loaded, never used (see its docstring)
        self.conv_out = nn.Conv2d(channels, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_in(x)
        y = self.conv2(torch.cat(self.irnn1(y), dim=1))
        y = F.relu(self.conv3(torch.cat(self.irnn2(y), dim=1)))
        return torch.sigmoid(self.conv_out(y))


class SPANet(nn.Module):
    """BGR Bx3xHxW in [0, 1] -> (first attention map Bx1xHxW, derained BGR Bx3xHxW,
    not clamped)."""

    def __init__(self, channels: int = CHANNELS, blocks: int = BLOCKS) -> None:
        super().__init__()
        self.blocks = blocks
        self.conv_in = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.ReLU())
        for i in range(1, blocks + 1):  # published names: res_block1 .. res_block17
            self.add_module(f"res_block{i}", ResBlock(channels))
        self.SAM1 = SAM(channels)
        self.conv_out = nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1, bias=False))

    def block(self, i: int) -> ResBlock:
        """Block ``i`` (1-based, as in the state dict)."""
        return getattr(self, f"res_block{i}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv_in(x)
        first: torch.Tensor | None = None
        mask: torch.Tensor | None = None
        for i in range(1, self.blocks + 1):
            if i in ATTENTION_STARTS:
                mask = self.SAM1(x)
                first = mask if first is None else first
            attended = mask is not None and i < ATTENTION_STARTS[-1] + ATTENTION_SPAN
            b = self.block(i)(x)
            x = F.relu((b * mask if attended else b) + x)
        assert first is not None
        return first, self.conv_out(x)


def load_spanet(path: Path | str) -> SPANet:
    """SPANet with the published state dict at ``path`` loaded strictly, in eval mode."""
    model = SPANet()
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.no_grad()
def derain_rgb(model: SPANet, img_uint8_rgb: np.ndarray) -> np.ndarray:
    """One HxWx3 uint8 RGB frame -> derained HxWx3 uint8 RGB (whole frame, no tiling;
    converted to BGR for the network and back, clamped to [0, 1] and rounded)."""
    if img_uint8_rgb.ndim != 3 or img_uint8_rgb.shape[2] != 3 or img_uint8_rgb.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {img_uint8_rgb.shape} {img_uint8_rgb.dtype}")
    bgr = cv2.cvtColor(img_uint8_rgb, cv2.COLOR_RGB2BGR)
    x = torch.from_numpy(bgr).permute(2, 0, 1)[None].float().div_(255.0)
    device = next(model.parameters()).device
    out = model(x.to(device))[1].clamp_(0.0, 1.0)[0].permute(1, 2, 0).cpu().numpy()
    out_bgr = np.rint(out * 255.0).astype(np.uint8)
    return cv2.cvtColor(out_bgr, cv2.COLOR_BGR2RGB)
