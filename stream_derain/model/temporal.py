"""The multi-frame student (derainer v4): v3's network plus temporal evidence.

Rain adds light to a pixel for about one frame and moves on; the scene stays. The
student sees a window of K frames, stacked on the channel axis in *slot order*: slot
0 is the target frame (the one derained), slots 1..K-1 its neighbours (for
``centred`` windows the offsets 0, -1, +1, -2, +2; for ``causal`` ones 0, -1, -2, ...;
:data:`OFFSETS`). One set of weights serves both modes: training mixes them.

- **temporal evidence** (:class:`TemporalEvidence`, no weights): for each colour
  channel, the target's brightening over each neighbour, d_j = I_0 - I_j, reduced
  over the neighbours to two maps: the least brightening (min_j d_j: rain in the
  target is brighter than *every* neighbour, a moving edge rarely is) and the middle
  one (the mean of d_j without its extremes: the median for K = 5, the mean for
  K = 3), which tolerates one neighbour where rain covers the same pixel. The frames
  are not aligned: implicit alignment, as multi-frame video denoisers do without
  flow; the network learns from the target's own content where motion, not rain,
  made a pixel brighter. (``align = "flow"`` in training warps neighbours by DIS flow
  first: the explicit-alignment ablation; docs/derainer_v4.md.)
- the evidence (6 channels) is pixel-unshuffled like the frame and a convolution
  (``kernel`` 1 or 3) adds it to v3's rain stem before its ReLU. That convolution is
  zero-initialised, so a student grown from v3 reproduces v3 exactly at step 0.
- everything else is v3's :class:`~.student.DerainStudent` on the target frame:
  O_1 = clamp(I_0 - R + D, 0, 1).
- optional **temporal gate** (``gate``, v4's design): the crude training-free filter
  that gains +5 dB on held-out video replaces a pixel brighter than its neighbours'
  median by that median. The trimmed mean above is that median's difference (for
  K = 5, I_0 - median of the four neighbours), so the temporal background is
  T = I_0 - max(middle, 0). The gate learns *where* to believe it: a head on the rain
  features predicts a full-resolution map g in [0, 1] (sigmoid of a pixel-shuffled
  3x3 convolution whose weights start at 0 and bias at -6), and
  output = (1 - g) O_1 + g min(O_1, T): where the gate opens, the darker of the
  network's output and the temporal background (rain only adds light, so subtracting
  what the network already removed twice is avoided). At step 0 g = 0.0025 everywhere:
  v3 within a grey level. (A first version scaled g by a learned scalar that started
  at 0, for an exact v3 at step 0: the gate's weights then get no gradient until the
  scalar grows, and the scalar alone only sees a uniform gate, which costs more on
  rain-free windows than it gains on rainy ones: it stayed at 0.001 for 500 steps.)

Input Bx(3K)xHxW in [0, 1]; output Bx3xHxW. H, W multiples of ``scale``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .student import DerainStudent, StudentConfig

# slot offsets (frames relative to the target) of each window mode, by K
OFFSETS: dict[int, dict[str, tuple[int, ...]]] = {
    3: {"centred": (0, -1, 1), "causal": (0, -1, -2)},
    5: {"centred": (0, -1, 1, -2, 2), "causal": (0, -1, -2, -3, -4)},
}
EVIDENCE_CHANNELS = 6
GATE_BIAS = -6.0  # the gate's initial logit: sigmoid(-6) = 0.0025


class TemporalEvidence(nn.Module):
    """Bx(3K)xHxW -> Bx6xHxW: per colour, min_j (I_0 - I_j) and the trimmed mean of
    (I_0 - I_j) over the K-1 neighbours (the extremes dropped when K-1 > 2)."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        if frames < 2:
            raise ValueError(f"a temporal student needs at least 2 frames, got {frames}")
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the window as Bx K x 3 x H x W and reductions over K: a graph without per-frame
        # channel slices (OpenVINO's bf16 path ran sliced 3-channel pieces 2.7x slower)
        b, _, h, w = x.shape
        frames = x.reshape(b, self.frames, 3, h, w)
        diffs = frames[:, :1] - frames[:, 1:]  # B x (K-1) x 3 x H x W
        lo, hi, total = diffs.amin(dim=1), diffs.amax(dim=1), diffs.sum(dim=1)
        n = self.frames - 1
        middle = (total - lo - hi) / (n - 2) if n > 2 else total / n
        return torch.cat([lo, middle], dim=1)


@dataclass(frozen=True)
class TemporalConfig:
    """The v3 student's hyperparameters plus the window: ``frames`` K and the kernel of
    the evidence convolution."""

    student: dict[str, int] = field(default_factory=dict)  # overrides of StudentConfig
    frames: int = 5
    kernel: int = 1
    gate: bool = False  # the temporal gate (see the module docstring)


class TemporalStudent(DerainStudent):
    """Window Bx(3K)xHxW (slot 0 the target) -> (output, rain layer, detail layer), each Bx3xHxW."""

    def __init__(self, cfg: TemporalConfig) -> None:
        super().__init__(StudentConfig(**cfg.student))
        self.tcfg = cfg
        s, c = self.cfg.scale, self.cfg.channels
        self.evidence = TemporalEvidence(cfg.frames)
        self.temporal = nn.Conv2d(EVIDENCE_CHANNELS * s * s, c, cfg.kernel, padding=cfg.kernel // 2)
        nn.init.zeros_(self.temporal.weight)  # step 0 reproduces the single-frame student
        nn.init.zeros_(self.temporal.bias)
        self.gate: nn.Conv2d | None = None
        if cfg.gate:  # rain features -> s*s gate logits per packed pixel -> HxW
            self.gate = nn.Conv2d(c, s * s, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, GATE_BIAS)  # g = 0.0025 at step 0: below a grey level

    @property
    def in_channels(self) -> int:
        return 3 * self.tcfg.frames

    def grown_parameters(self) -> list[nn.Parameter]:
        """What v4 adds to the single-frame student (trained at a larger learning rate)."""
        extra = [] if self.gate is None else list(self.gate.parameters())
        return [*super().grown_parameters(), *self.temporal.parameters(), *extra]

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        target = x[:, :3]
        evidence = self.evidence(x)
        feats = self.rain_features(target, self.temporal(self.unshuffle(evidence)))
        out, rain, detail = self.decode(target, feats)
        if self.gate is None:
            return out, rain, detail
        g = torch.sigmoid(self.shuffle(self.gate(feats)))  # Bx1xHxW
        background = target - torch.relu(evidence[:, 3:])  # the neighbours' median where darker
        out = out - g * torch.relu(out - background)  # (1 - g) O + g min(O, T)
        return out, target + detail - out, detail  # O = I - R + D


def build_temporal(student: dict[str, int] | None = None, frames: int = 5,
                   kernel: int = 1, gate: bool = False) -> TemporalStudent:
    """A temporal student: v3's network (``student`` overrides StudentConfig) over K frames."""
    return TemporalStudent(TemporalConfig(dict(student or {}), frames, kernel, gate))


def temporal_config_dict(model: TemporalStudent) -> dict:
    return asdict(model.tcfg)
