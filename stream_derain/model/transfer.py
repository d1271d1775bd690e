"""The two teachers of the task-transfer recipe, and the student's feature adapters.

After Wang, Ma and Liu (2022), "rain removal" is taught by two related tasks whose
labels are free:

- :class:`RecognitionTeacher`: is this crop a real rainy scene or a real rain-free
  one? Its last convolutional features are the fixed feature space of the
  contrastive terms, its logit gives a rain score ``p_rain``.
- :class:`ReconstructionTeacher`: restore a clean photo from a version degraded the
  way rain scattering degrades it (veil, contrast loss, blur). Same I/O convention
  as the student (RGB in [0, 1], 1/``scale`` resolution inside), but wider and deeper.

All tensors are float RGB in [0, 1], BxCxHxW.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class RecognitionConfig:
    """Architecture of the recognition teacher; :func:`build_recognition` fixes it."""

    widths: tuple[int, ...] = (32, 64, 96)  # one stage per width, each halves H and W


@dataclass(frozen=True)
class ReconstructionConfig:
    """Architecture of the reconstruction teacher; :func:`build_reconstruction` fixes it."""

    scale: int = 4
    channels: int = 96
    blocks: int = 6


class ConvStage(nn.Module):
    """conv3x3 (stride s) -> ReLU -> conv3x3 -> ReLU: BxCinxHxW -> BxCoutx(H/s)x(W/s)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class RecognitionTeacher(nn.Module):
    """Rainy-vs-rain-free classifier: Bx3xHxW -> logit B (positive = rainy).

    ``features`` (Bx F x H/8 x W/8, F the last width) is the fixed feature space of
    the contrastive terms; the logit is a linear layer on their spatial mean."""

    def __init__(self, cfg: RecognitionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = (3, *cfg.widths)
        self.stages = nn.Sequential(
            *[ConvStage(widths[i], widths[i + 1], 2) for i in range(len(cfg.widths))]
        )
        self.head = nn.Linear(cfg.widths[-1], 1)

    @property
    def stride(self) -> int:
        return 2 ** len(self.cfg.widths)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW -> BxFx(H/8)x(W/8) (for the default three stages)."""
        return self.stages(x - 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)

    def rain_probability(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW -> B, the probability that each image shows rain."""
        return torch.sigmoid(self(x))


class ResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, plus identity: BxCxHxW -> BxCxHxW."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class ReconstructionTeacher(nn.Module):
    """Degraded Bx3xHxW -> restored Bx3xHxW (H, W multiples of ``scale``).

    output = clamp(I + residual); ``forward_all`` also returns the body's features
    (BxCx(H/s)x(W/s)), which the student's adapter learns to match."""

    def __init__(self, cfg: ReconstructionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        packed = 3 * cfg.scale * cfg.scale
        self.unshuffle = nn.PixelUnshuffle(cfg.scale)
        self.shuffle = nn.PixelShuffle(cfg.scale)
        self.stem = nn.Conv2d(packed, cfg.channels, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(cfg.channels) for _ in range(cfg.blocks)])
        self.head = nn.Conv2d(cfg.channels, packed, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # start as the identity
        nn.init.zeros_(self.head.bias)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(F.relu(self.stem(self.unshuffle(x))))
        return torch.clamp(x + self.shuffle(self.head(feats)), 0.0, 1.0), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


class FeatureAdapter(nn.Module):
    """1x1 conv mapping student features to a teacher's: BxCsxhxw -> BxCtx(h/pool)x(w/pool)."""

    def __init__(self, c_student: int, c_teacher: int, pool: int = 1) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c_student, c_teacher, 1)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        return F.avg_pool2d(y, self.pool) if self.pool > 1 else y


def build_recognition(**overrides: object) -> RecognitionTeacher:
    """The shipped recognition teacher: three stride-2 stages of widths 32-64-96, 1/8 features."""
    return RecognitionTeacher(RecognitionConfig(**overrides))


def build_reconstruction(**overrides: int) -> ReconstructionTeacher:
    """The shipped reconstruction teacher: 1/4 resolution, 96 channels, 6 residual blocks
    (about 4x the student's MACs per pixel)."""
    return ReconstructionTeacher(ReconstructionConfig(**overrides))


def model_config_dict(model: RecognitionTeacher | ReconstructionTeacher) -> dict[str, object]:
    """The architecture as plain JSON-able values (tuples as lists), as checkpoints store it."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.cfg).items()}
