"""The distillation teacher of the derainer (issue 11, item 3): a *grown* student.

A teacher with about 10x the student's compute, trained on the same synthetic pairs;
its outputs on real rainy frames then become the distilled student's targets
(:mod:`stream_derain.train.teacher_targets`). On this project's CPUs a teacher trained
from scratch gets a few thousand steps, far fewer than the student has had, so the
teacher is grown from a trained student instead: it holds the whole student and adds
a refiner at 1/``scale`` (default 1/2) resolution on the input and the student's
output, whose zero-initialised head makes the new teacher exactly the student at step
0. Every step then goes into what the student cannot do (thin streaks at twice its
resolution, a wider receptive field, more channels), not into relearning it::

    O_s, R, D = student(I)                                   # each Bx3xHxW
    O = clamp(O_s + shuffle(head(body(stem(unshuffle([I, O_s]))))), 0, 1)

with ``body`` a stack of ``blocks`` squeeze-and-excitation residual blocks of
``channels``. All tensors are float RGB in [0, 1], Bx3xHxW; H and W must be multiples
of both scales.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .student import DerainStudent, SEResBlock, StudentConfig


@dataclass(frozen=True)
class RefinerConfig:
    """Architecture of the teacher's refiner; :func:`build_teacher` fixes it."""

    scale: int = 2
    channels: int = 64
    blocks: int = 8
    se_reduction: int = 4


class Refiner(nn.Module):
    """(I, O_s) Bx6xHxW -> correction Bx3xHxW, at 1/``scale`` resolution inside."""

    def __init__(self, cfg: RefinerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        s, c = cfg.scale, cfg.channels
        self.unshuffle, self.shuffle = nn.PixelUnshuffle(s), nn.PixelShuffle(s)
        self.stem = nn.Conv2d(6 * s * s, c, 3, padding=1)
        self.body = nn.Sequential(*[SEResBlock(c, cfg.se_reduction) for _ in range(cfg.blocks)])
        self.head = nn.Conv2d(c, 3 * s * s, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # the grown teacher starts as its student
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.head(self.body(F.relu(self.stem(self.unshuffle(x))))))


class GrownTeacher(nn.Module):
    """I (Bx3xHxW) -> (output O, the student's rain layer R, its detail layer D)."""

    def __init__(self, student: StudentConfig, refiner: RefinerConfig) -> None:
        super().__init__()
        self.student = DerainStudent(student)
        self.refiner = Refiner(refiner)
        self.multiple = math.lcm(student.scale, refiner.scale)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        base, rain, detail = self.student.forward_all(x)
        out = base + self.refiner(torch.cat([x, base], dim=1))
        return torch.clamp(out, 0.0, 1.0), rain, detail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW in [0, 1] -> derained Bx3xHxW in [0, 1]."""
        return self.forward_all(x)[0]


Derainer = DerainStudent | GrownTeacher  # both: forward_all(I) -> (O, R, D) and .multiple


def build_teacher(student: dict[str, int] | None = None,
                  refiner: dict[str, int] | None = None) -> GrownTeacher:
    """A grown teacher: a student with ``student`` overrides (none: the shipped
    student's shape) and a refiner with ``refiner`` overrides (none: 1/2 resolution,
    64 channels, 8 SE blocks, ~10x the student's MACs in all)."""
    return GrownTeacher(StudentConfig(**(student or {})), RefinerConfig(**(refiner or {})))


def teacher_config_dict(model: GrownTeacher) -> dict[str, Any]:
    return {"student": asdict(model.student.cfg), "refiner": asdict(model.refiner.cfg)}
