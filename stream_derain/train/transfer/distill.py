"""``train distill``: the student learns from both frozen teachers, no rain labels needed.

On a batch of real rainy crops plus clean crops degraded like rain scattering does:

- feature level: the student's ``rain_features`` (BxCx(H/4)x(W/4)) pass through small
  1x1 adapters and match the recognition teacher's features (average-pooled to its
  1/8 resolution) and the reconstruction teacher's body features (1/4);
- output level, on the degraded crops only (where a target exists): the student's
  output matches the reconstruction teacher's output and the clean photo.

The student keeps exactly the shipped architecture; the adapters are saved in the
checkpoint's ``extra`` and dropped afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...model.student import DerainStudent, build_student, student_config_dict
from ...model.transfer import FeatureAdapter
from .. import loop
from ..losses import feature_match
from ..supervised import ARCH
from .data import degraded_batch, load_sources, real_batch, split_holdout
from .teachers import RAINY_DIRS, RECOGNITION_ARCH, RECONSTRUCTION_ARCH, TransferConfig, load_frozen

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig(TransferConfig):
    """Distillation of both teachers into the student."""

    out_dir: str = "runs/transfer/distill"
    recognition: str = "runs/transfer/recognition/last.pt"
    reconstruction: str = "runs/transfer/reconstruction/last.pt"
    rainy_dirs: tuple[str, ...] = RAINY_DIRS
    holdout: float = 0.2  # the recognition teacher's held-out frames stay unseen here too
    batch_size: int = 8  # real rainy crops; as many degraded clean crops again
    crop: int = 64
    recognition_feature_weight: float = 0.5
    reconstruction_feature_weight: float = 0.5
    teacher_output_weight: float = 1.0
    clean_weight: float = 1.0
    student: dict[str, int] = field(default_factory=dict)  # overrides of StudentConfig (tests only)


@dataclass
class Teachers:
    """The two frozen teachers and the student's adapters onto their feature spaces."""

    recognition: nn.Module
    reconstruction: nn.Module
    adapters: dict[str, FeatureAdapter]


def make_teachers(cfg: DistillConfig, student: DerainStudent) -> Teachers:
    recognition = load_frozen(Path(cfg.recognition), RECOGNITION_ARCH)
    reconstruction = load_frozen(Path(cfg.reconstruction), RECONSTRUCTION_ARCH)
    c = student.cfg.channels
    adapters = {
        "recognition": FeatureAdapter(c, recognition.cfg.widths[-1],
                                      pool=recognition.stride // student.cfg.scale),
        "reconstruction": FeatureAdapter(c, reconstruction.cfg.channels,
                                         pool=reconstruction.cfg.scale // student.cfg.scale),
    }
    return Teachers(recognition, reconstruction, adapters)


def distill_losses(cfg: DistillConfig, student: DerainStudent, t: Teachers, real: torch.Tensor,
                   degraded: torch.Tensor, target: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted total and its parts on real rainy crops and degraded clean crops with
    their targets (all Bx3xHxW in [0, 1])."""
    x = torch.cat([real, degraded])
    with torch.no_grad():
        recog_feats = t.recognition.features(x)
        teacher_out, recon_feats = t.reconstruction.forward_all(x)
    feats = student.rain_features(x)
    out = student(degraded)
    parts = {
        "recog_feat": feature_match(t.adapters["recognition"](feats), recog_feats),
        "recon_feat": feature_match(t.adapters["reconstruction"](feats), recon_feats),
        "teacher_out": F.l1_loss(out, teacher_out[len(real):]),
        "clean": F.l1_loss(out, target),
    }
    loss = (cfg.recognition_feature_weight * parts["recog_feat"]
            + cfg.reconstruction_feature_weight * parts["recon_feat"]
            + cfg.teacher_output_weight * parts["teacher_out"] + cfg.clean_weight * parts["clean"])
    return loss, parts


def train_distill(cfg: DistillConfig) -> Path:
    """Train (or resume) the student from the two teachers; returns ``last.pt``."""
    rainy, _ = split_holdout(load_sources(cfg.rainy_dirs, cfg.max_side, cfg.crop), cfg.holdout)
    clean = load_sources(cfg.clean_dirs, cfg.max_side, cfg.crop, cfg.exclude_like)
    loop.seed(cfg)
    student = build_student(**cfg.student)
    teachers = make_teachers(cfg, student)
    run = loop.open_run(cfg, ARCH, student, student_config_dict(student), dict(teachers.adapters))
    teachers.recognition.to(run.device)
    teachers.reconstruction.to(run.device)

    def batch() -> list[torch.Tensor]:
        real = real_batch(rainy, cfg.batch_size, cfg.crop, run.rng)
        degraded, target = degraded_batch(clean, cfg.batch_size, cfg.crop, run.rng)
        return [run.tensor(a) for a in (real, degraded, target)]

    return loop.run_loop(run, batch, lambda b: distill_losses(cfg, student, teachers, *b))
