"""``train finetune``: the student on a FIXED minority of paired synthetic rain, with
optional contrastive and semi-supervised terms (Semi-DRDNet-style; our losses).

Per step, on crops of the few-pair set (rainy I, clean B):

    L = L1(O, B) + w_rain * L1(R, I - B)                          supervised
      + w_con * dual_contrast(f; O, R, I, B)                      if contrastive_weight > 0
      + w_semi * (push(f; O_u, U) + w_score * -log(1 - p_rain(O_u)))
      + w_guard * guard(O_u, U, R_u) + w_detail * no_new_detail(O_u, U)
                                                                  if semi_weight > 0

where f is the recognition teacher's frozen feature map and U a crop of a real rainy
image (no label). The contrastive term sees the first ``contrast_batch`` crops of the
batch (the teacher costs more than the student). The guards keep the unpaired terms
honest: L1 to the input outside the predicted rain and a cap on the mean change stop
them erasing real detail, and ``no_new_detail`` stops them inventing texture that
fools the teacher (the first version of this term did exactly that).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...model.student import DerainStudent, build_student, student_config_dict
from .. import loop
from ..data import drop_overlaps, load_folders
from ..losses import dual_contrast, identity_guard, no_new_detail, push_from_input, rain_free_score
from ..supervised import ARCH, init_from
from .data import fixed_pairs, load_sources, pair_batch, real_batch, split_holdout
from .teachers import RAINY_DIRS, RECOGNITION_ARCH, TransferConfig, load_frozen

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig(TransferConfig):
    """Few-pair fine-tuning; the rows of the ablation differ only in ``init`` and the weights."""

    out_dir: str = "runs/transfer/finetune"
    init: str = ""  # student checkpoint to start from (e.g. the distilled one); "" = fresh student
    recognition: str = "runs/transfer/recognition/last.pt"  # needed by the contrastive / semi terms
    pairs: int = 300
    pair_size: int = 128
    pairs_seed: int = 1234  # the few-pair set is the same whatever ``seed`` is
    heavy_fraction: float = 0.5
    batch_size: int = 8
    crop: int = 96
    lr: float = 5e-4
    rain_loss_weight: float = 0.5
    contrastive_weight: float = 0.0
    contrast_batch: int = 4  # crops of each batch the contrastive term sees
    semi_weight: float = 0.0  # 0 turns the semi-supervised term off
    semi_batch: int = 4
    semi_crop: int = 96
    score_weight: float = 1.0  # of -log(1 - p_rain(O_u)), relative to the push
    push_margin: float = 0.05  # feature distance at which the push has halved
    guard_weight: float = 1.0
    guard_threshold: float = 0.05  # |R| at which a pixel counts as rain (no guard there)
    guard_cap: float = 0.06  # mean |O_u - U| allowed before the cap penalty
    detail_weight: float = 1.0  # of no_new_detail(O_u, U)
    rainy_dirs: tuple[str, ...] = RAINY_DIRS
    holdout: float = 0.2  # held-out real frames stay unseen by the semi-supervised term
    student: dict[str, int] = field(default_factory=dict)  # overrides of StudentConfig (tests only)


def init_student(cfg: FinetuneConfig) -> DerainStudent:
    student = build_student(**cfg.student)
    if cfg.init and not loop.resumes(cfg):
        init_from(student, Path(cfg.init))
    return student


def semi_loss(cfg: FinetuneConfig, student: DerainStudent, recognition: torch.nn.Module,
              real: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Unpaired terms on real rainy crops U (Bx3xHxW) and their guard."""
    out, rain, _ = student.forward_all(real)
    push = push_from_input(recognition.features, out, real, cfg.push_margin)
    score = rain_free_score(recognition(out))
    guard = identity_guard(out, real, rain, cfg.guard_threshold, cfg.guard_cap)
    detail = no_new_detail(out, real)
    loss = (cfg.semi_weight * (push + cfg.score_weight * score) + cfg.guard_weight * guard
            + cfg.detail_weight * detail)
    parts = {"push": push, "rain_free": score, "guard": guard, "new_detail": detail}
    return loss, {k: v.item() for k, v in parts.items()}


def train_finetune(cfg: FinetuneConfig) -> Path:
    """Train (or resume) one fine-tuning row; returns ``last.pt``."""
    if cfg.crop > cfg.pair_size:
        raise ConfigError(f"crop {cfg.crop} is larger than pair_size {cfg.pair_size}")
    backgrounds = drop_overlaps(load_folders(cfg.clean_dirs, min_side=cfg.pair_size), cfg.exclude_like)
    rainy_pairs, clean_pairs = fixed_pairs(backgrounds, cfg.pairs, cfg.pair_size, cfg.heavy_fraction,
                                           cfg.pairs_seed)
    log.info("few-pair set: %d pairs of %dx%d from %d backgrounds", cfg.pairs, cfg.pair_size, cfg.pair_size,
             len(backgrounds))
    needs_teacher = cfg.contrastive_weight > 0 or cfg.semi_weight > 0
    recognition = load_frozen(Path(cfg.recognition), RECOGNITION_ARCH) if needs_teacher else None
    real = None
    if cfg.semi_weight > 0:
        real, _ = split_holdout(load_sources(cfg.rainy_dirs, cfg.max_side, cfg.semi_crop), cfg.holdout)
    loop.seed(cfg)
    student = init_student(cfg)
    run = loop.open_run(cfg, ARCH, student, student_config_dict(student))
    if recognition is not None:
        recognition.to(run.device)

    def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        rainy, clean = pair_batch(rainy_pairs, clean_pairs, cfg.batch_size, cfg.crop, run.rng)
        crops = None if real is None else run.tensor(real_batch(real, cfg.semi_batch, cfg.semi_crop, run.rng))
        return run.tensor(rainy), run.tensor(clean), crops

    def loss_fn(b: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
                ) -> tuple[torch.Tensor, dict[str, float]]:
        rainy, clean, real_crops = b
        out, rain, _ = student.forward_all(rainy)
        parts = {"l1": F.l1_loss(out, clean), "rain_l1": F.l1_loss(rain, rainy - clean)}
        loss = parts["l1"] + cfg.rain_loss_weight * parts["rain_l1"]
        if cfg.contrastive_weight > 0:
            n = cfg.contrast_batch
            parts["contrast"] = dual_contrast(recognition.features, out[:n], rain[:n], rainy[:n], clean[:n])
            loss = loss + cfg.contrastive_weight * parts["contrast"]
        logged = {k: v.item() for k, v in parts.items()}
        if real_crops is not None:
            unpaired, semi_parts = semi_loss(cfg, student, recognition, real_crops)
            loss = loss + unpaired
            logged.update(semi_parts)
        return loss, logged

    return loop.run_loop(run, batch, loss_fn)
