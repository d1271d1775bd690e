"""The distilled deraining student, after Semi-DRDNet's two-branch split.

The network works at 1/``scale`` resolution inside (pixel-unshuffle in, pixel-shuffle
out) so that it stays within the pipeline's budget of 20k multiply-accumulates per
pixel. All tensors are float in [0, 1], RGB, BxCxHxW; H and W must be multiples of
``scale`` (the backends pad and crop).

- rain-residual branch: squeeze-and-excitation residual blocks -> streak layer R
- detail-repair branch: dilated context-aggregation blocks (dilations 1, 3, 5 fused
  by a 1x1) applied to the rain-removed image -> detail layer D
- output = clamp(I - R + D, 0, 1)
- optional full-resolution refinement (v2): two 3x3 convolutions at full resolution
  on (I, I - R + D) add a correction F, so that thin streaks and fine texture that the
  1/4-resolution body cannot place exactly are fixed where they are:
  output = clamp(I - R + D + F, 0, 1)
- optional veil head (v3): heavy rain also scatters light into a veil (Li et al.'s
  heavy-rain model, ``I = t (B + S) + (1 - t) A``). A tiny head reads the rain
  branch's pooled features and dark-channel statistics of I - R + D and predicts one
  veil share v = 1 - t in [0, ``max_veil``) and an airlight colour A per image; the
  output is inverted through it: ``O = (I - R + D - v A) / (1 - v)``. It starts at
  v ~ 0.01 (near the identity) and costs a few MACs per pixel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel gate: BxCxHxW -> BxCxHxW."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(w))))
        return x * w


class SEResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3 -> SE, plus identity: BxCxHxW -> BxCxHxW."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.se = SEBlock(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(x + self.se(y))


class ContextAggregationBlock(nn.Module):
    """Three parallel dilated 3x3 convs (dilations 1, 3, 5) fused by a 1x1, plus
    identity: BxCxHxW -> BxCxHxW. Each branch has C/3 channels (rounded up)."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 3, 5)) -> None:
        super().__init__()
        branch = -(-channels // len(dilations))
        self.branches = nn.ModuleList(
            nn.Conv2d(channels, branch, 3, padding=d, dilation=d) for d in dilations
        )
        self.fuse = nn.Conv2d(branch * len(dilations), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([F.relu(b(x)) for b in self.branches], dim=1)
        return F.relu(x + self.fuse(y))


class VeilHead(nn.Module):
    """(rain features BxCxhxw, image Bx3xHxW) -> (veil share v Bx1x1x1 in [0, max_veil),
    airlight A Bx3x1x1 in [0.5, 1]), one per image."""

    def __init__(self, channels: int, hidden: int, max_veil: float = 0.6) -> None:
        super().__init__()
        self.max_veil = max_veil
        self.fc1 = nn.Conv2d(channels + 5, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, 4, 1)
        nn.init.zeros_(self.fc2.weight)
        with torch.no_grad():  # v = max_veil * sigmoid(-4) ~ 0.01: near the identity, yet within
            # reach of Adam's ~lr-sized steps (from sigmoid(-9) the head never moved in 3k steps)
            self.fc2.bias.copy_(torch.tensor([-4.0, 0.0, 0.0, 0.0]))

    @staticmethod
    def image_stats(img: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW -> Bx5x1x1: channel means, the mean of the channel minimum and of the
        dark channel (8x8 local minimum of it), which a veil lifts."""
        low = img.amin(dim=1, keepdim=True)
        dark = -F.max_pool2d(-low, 8, ceil_mode=True)
        return torch.cat([img.mean(dim=(2, 3), keepdim=True), low.mean(dim=(2, 3), keepdim=True),
                          dark.mean(dim=(2, 3), keepdim=True)], dim=1)

    def forward(self, feats: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.cat([feats.mean(dim=(2, 3), keepdim=True), self.image_stats(img)], dim=1)
        z = self.fc2(F.relu(self.fc1(pooled)))
        veil = self.max_veil * torch.sigmoid(z[:, :1])
        return veil, 0.5 + 0.5 * torch.sigmoid(z[:, 1:])


class StudentParts(NamedTuple):
    """Everything the student computes, BxCxHxW each (veil Bx1x1x1, airlight Bx3x1x1;
    veil 0 without a veil head)."""

    out: torch.Tensor
    rain: torch.Tensor
    detail: torch.Tensor
    veil: torch.Tensor
    airlight: torch.Tensor


@dataclass(frozen=True)
class StudentConfig:
    """Architecture hyperparameters; the builder functions below fix them."""

    scale: int = 4
    channels: int = 48
    se_blocks: int = 3
    ca_blocks: int = 2
    se_reduction: int = 4
    refine: int = 0  # hidden channels of the full-resolution refinement (0: none)
    veil: int = 0  # hidden units of the veil head (0: none)


class DerainStudent(nn.Module):
    """I (Bx3xHxW) -> (output O, rain layer R, detail layer D), each Bx3xHxW."""

    def __init__(self, cfg: StudentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        s, c = cfg.scale, cfg.channels
        packed = 3 * s * s
        self.unshuffle = nn.PixelUnshuffle(s)
        self.shuffle = nn.PixelShuffle(s)
        self.rain_stem = nn.Conv2d(packed, c, 3, padding=1)
        self.rain_body = nn.Sequential(
            *[SEResBlock(c, cfg.se_reduction) for _ in range(cfg.se_blocks)]
        )
        self.rain_head = nn.Conv2d(c, packed, 3, padding=1)
        self.detail_stem = nn.Conv2d(packed, c, 3, padding=1)
        self.detail_body = nn.Sequential(*[ContextAggregationBlock(c) for _ in range(cfg.ca_blocks)])
        self.detail_head = nn.Conv2d(c, packed, 3, padding=1)
        heads = [self.rain_head, self.detail_head]
        self.refine: nn.Sequential | None = None
        if cfg.refine:
            self.refine = nn.Sequential(nn.Conv2d(6, cfg.refine, 3, padding=1), nn.ReLU(),
                                        nn.Conv2d(cfg.refine, 3, 3, padding=1))
            heads.append(self.refine[2])
        self.veil_head = VeilHead(c, cfg.veil) if cfg.veil else None
        for head in heads:  # start as the identity: O = I
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def rain_features(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW -> BxCx(H/s)x(W/s): the rain branch's last features (distillation taps them)."""
        return self.rain_body(F.relu(self.rain_stem(self.unshuffle(x))))

    def parts(self, x: torch.Tensor) -> StudentParts:
        rain_feats = self.rain_features(x)
        rain = self.shuffle(self.rain_head(rain_feats))
        derained = x - rain
        feats = self.detail_body(F.relu(self.detail_stem(self.unshuffle(derained))))
        detail = self.shuffle(self.detail_head(feats))
        out = derained + detail
        if self.refine is not None:  # full resolution: Bx6xHxW -> Bx3xHxW correction
            out = out + self.refine(torch.cat([x, out], dim=1))
        veil, airlight = x.new_zeros(x.shape[0], 1, 1, 1), x.new_ones(x.shape[0], 3, 1, 1)
        if self.veil_head is not None:  # invert the scattering: B = (I' - v A) / (1 - v)
            veil, airlight = self.veil_head(rain_feats, out.clamp(0.0, 1.0))
            out = (out - veil * airlight) / (1.0 - veil)
        return StudentParts(torch.clamp(out, 0.0, 1.0), rain, detail, veil, airlight)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Bx3xHxW -> (output O, rain layer R, detail layer D)."""
        p = self.parts(x)
        return p.out, p.rain, p.detail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW in [0, 1] -> derained Bx3xHxW in [0, 1]."""
        return self.forward_all(x)[0]


def build_student(**overrides: int) -> DerainStudent:
    """A student; with no overrides v1's: 1/4-resolution body, 48 channels, 3 SE blocks,
    2 CA blocks, no refinement and no veil head (v3 adds ``veil=32``)."""
    return DerainStudent(StudentConfig(**overrides))


def student_config_dict(model: DerainStudent) -> dict[str, int]:
    return asdict(model.cfg)


def count_macs_per_pixel(model: nn.Module, size: int = 64) -> float:
    """Multiply-accumulates per input pixel of convolutions (SE and bias terms are
    negligible and not counted), measured with forward hooks on a size x size input."""
    total = 0

    def hook(mod: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += out.numel() // out.shape[0] * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    return total / (size * size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
