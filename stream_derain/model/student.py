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
- optional veil head (a v5 experiment, off in the shipped model): the inverse of
  the atmospheric scattering model that heavy rain follows (Li, Cheong and Tan
  2019: I = T (B + R) + (1 - T) A). Undoing a veil is B = I / T - A (1 / T - 1),
  a gain and an offset, which the additive residual above cannot express. A small
  head on the rain features predicts a gain map G (1 channel) and an offset map V
  (3) at 1/``scale`` resolution, upsampled bilinearly (a veil is smooth), applied
  to the streak-free image before detail repair: J = (1 + G) (I - R) + V, output =
  clamp(J + D (+ F), 0, 1). Zero-initialised, so a student grown by it starts as
  its former self; the "rain layer" it reports is everything removed before detail
  repair, I - J.
- optional coarse context (a v6 experiment): the rain features see about 70 px
  (eight 3x3 convolutions at 1/4 resolution), too little to tell a wide soft streak
  or a rain curtain from the scene. A branch at 4x coarser resolution (1/16 of the
  input: average-pooled, two 3x3 convolutions, the second dilated by 2) adds what
  it sees (about 200 px more) back to the rain features, upsampled bilinearly, at
  ~1% of the budget. Its output layer is zero-initialised like the heads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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


class CoarseContext(nn.Module):
    """BxCxhxw -> BxCxhxw (any h, w): average-pool by ``pool`` (the last window partial),
    conv3x3 C->k, ReLU, conv3x3 (dilation 2) k->k, ReLU, conv1x1 k->C, bilinear
    upsampling back to h x w. Zero-initialised output: it adds nothing until trained."""

    def __init__(self, channels: int, hidden: int, pool: int = 4) -> None:
        super().__init__()
        self.pool = pool
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )
        nn.init.zeros_(self.body[4].weight)
        nn.init.zeros_(self.body[4].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(F.avg_pool2d(x, self.pool, ceil_mode=True))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


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


@dataclass(frozen=True)
class StudentConfig:
    """Architecture hyperparameters; the builder functions below fix them."""

    scale: int = 4
    channels: int = 48
    se_blocks: int = 3
    ca_blocks: int = 2
    se_reduction: int = 4
    refine: int = 0  # hidden channels of the full-resolution refinement (0: none)
    veil: int = 0  # hidden channels of the veil head (gain and offset maps; 0: none)
    context: int = 0  # hidden channels of the coarse context branch (0: none)


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
        self.context = CoarseContext(c, cfg.context) if cfg.context else None
        self.veil: nn.Sequential | None = None
        if cfg.veil:  # rain features -> (gain, offset r, g, b) at 1/s resolution
            self.veil = nn.Sequential(nn.Conv2d(c, cfg.veil, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(cfg.veil, 4, 3, padding=1))
            heads.append(self.veil[2])
        self.refine: nn.Sequential | None = None
        if cfg.refine:
            self.refine = nn.Sequential(nn.Conv2d(6, cfg.refine, 3, padding=1), nn.ReLU(),
                                        nn.Conv2d(cfg.refine, 3, 3, padding=1))
            heads.append(self.refine[2])
        for head in heads:  # start as the identity: O = I
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    @property
    def multiple(self) -> int:
        """Input H and W must be multiples of this."""
        return self.cfg.scale

    def grown_parameters(self) -> list[nn.Parameter]:
        """The optional parts' parameters (veil, refinement, context): what a student grown
        from a smaller one adds (training may give them a larger learning rate)."""
        parts = [m for m in (self.veil, self.refine, self.context) if m is not None]
        return [p for m in parts for p in m.parameters()]

    @property
    def in_channels(self) -> int:
        """Channels of the input: one RGB frame."""
        return 3

    def rain_features(self, x: torch.Tensor, stem_extra: torch.Tensor | None = None) -> torch.Tensor:
        """Bx3xHxW -> BxCx(H/s)x(W/s): the rain branch's last features (distillation taps them).
        ``stem_extra`` (BxCx(H/s)x(W/s)) joins the stem before its ReLU (the temporal student's
        evidence)."""
        return self.rain_features_packed(self.unshuffle(x), stem_extra)

    def rain_features_packed(self, packed: torch.Tensor,
                             stem_extra: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`rain_features` of the frame already pixel-unshuffled (Bx3s²x(H/s)x(W/s))."""
        stem = self.rain_stem(packed)
        if stem_extra is not None:
            stem = stem + stem_extra
        feats = self.rain_body(F.relu(stem))
        return feats if self.context is None else F.relu(feats + self.context(feats))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.decode(x, self.rain_features(x))

    def decode(self, x: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The frame x (Bx3xHxW) and its rain features -> (output, rain layer, detail layer)."""
        rain = self.shuffle(self.rain_head(feats))
        derained = x - rain
        if self.veil is not None:  # Bx4x(H/s)x(W/s) -> Bx4xHxW: gain and offset maps
            maps = F.interpolate(self.veil(feats), scale_factor=self.cfg.scale, mode="bilinear",
                                 align_corners=False)
            derained = derained * (1.0 + maps[:, :1]) + maps[:, 1:]
            rain = x - derained
        repair = self.detail_body(F.relu(self.detail_stem(self.unshuffle(derained))))
        detail = self.shuffle(self.detail_head(repair))
        out = derained + detail
        if self.refine is not None:  # full resolution: Bx6xHxW -> Bx3xHxW correction
            out = out + self.refine(torch.cat([x, out], dim=1))
        return torch.clamp(out, 0.0, 1.0), rain, detail

    @property
    def packs(self) -> bool:
        """Whether :meth:`forward` can run packed (:meth:`decode_packed`): no part of the
        network works at full resolution (the veil and the refinement do)."""
        return self.veil is None and self.refine is None

    def decode_packed(self, packed: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frame pixel-unshuffled (Bx3s²x(H/s)x(W/s)) and its rain features -> (output,
        rain layer), still packed. The same arithmetic as :meth:`decode`: unshuffle and
        shuffle are permutations, so I - R + D and the clamp can run on packed pixels, and
        the detail branch reads unshuffle(I - R) = unshuffle(I) - R_packed without another
        unshuffle. What a CPU runtime pays for is full-resolution elementwise passes over
        3 channels (OpenVINO's bf16 path: 5 of v3's 24 ms a 640x360 frame), not the
        arithmetic."""
        rain = self.rain_head(feats)
        derained = packed - rain
        repair = self.detail_body(F.relu(self.detail_stem(derained)))
        return torch.clamp(derained + self.detail_head(repair), 0.0, 1.0), rain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW in [0, 1] -> derained Bx3xHxW in [0, 1] (the exported graph: one
        unshuffle in, one shuffle out, where :attr:`packs`)."""
        if not self.packs:
            return self.forward_all(x)[0]
        packed = self.unshuffle(x)
        return self.shuffle(self.decode_packed(packed, self.rain_features_packed(packed))[0])


def build_student(**overrides: int) -> DerainStudent:
    """A student; with no overrides v1's: 1/4-resolution body, 48 channels, 3 SE blocks,
    2 CA blocks, no refinement (v2 adds ``refine=12``)."""
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
            model(torch.zeros(1, getattr(model, "in_channels", 3), size, size))
    finally:
        for h in handles:
            h.remove()
    return total / (size * size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
