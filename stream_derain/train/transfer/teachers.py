"""Training the two teachers (``train recognition``, ``train reconstruction``), the
config fields every transfer stage shares (:class:`TransferConfig`), and loading a
trained teacher frozen.

Each stage has its own frozen config dataclass (unknown keys are errors) and runs
:func:`.loop.run_loop`: ``out_dir/last.pt`` is written atomically every
``ckpt_every`` steps and resumed from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ... import synth
from ...model.transfer import (
    RecognitionTeacher,
    build_recognition,
    build_reconstruction,
    model_config_dict,
)
from .. import loop
from ..checkpoint import check_arch, load_weights, read_checkpoint, weights_to_use
from ..config import RAINY_DIRS, StageConfig
from .data import (
    degraded_batch,
    label_neutral,
    load_sources,
    recognition_batch,
    rescaled_crop,
    split_holdout,
    to_batch,
)

log = logging.getLogger(__name__)
RECOGNITION_ARCH = "RecognitionTeacher"
RECONSTRUCTION_ARCH = "ReconstructionTeacher"


@dataclass(frozen=True)
class TransferConfig(StageConfig):
    """Fields every transfer stage has beyond :class:`StageConfig`."""

    max_side: int = 720  # images are shrunk on load so that no side exceeds this


@dataclass(frozen=True)
class RecognitionTrainConfig(TransferConfig):
    """Recognition teacher: real rainy vs real rain-free crops, label-neutral augmentation."""

    out_dir: str = "runs/transfer/recognition"
    rainy_dirs: tuple[str, ...] = RAINY_DIRS
    holdout: float = 0.2  # last share of every folder, held out for the report
    eval_crops: int = 256  # held-out crops per class in the report
    synthetic_share: float = 0.0  # of the rainy crops: clean training crops with synthetic rain
    model: dict[str, Any] = field(default_factory=dict)  # overrides of RecognitionConfig


@dataclass(frozen=True)
class ReconstructionTrainConfig(TransferConfig):
    """Reconstruction teacher: clean photos restored from veiled / low-contrast / blurred ones."""

    out_dir: str = "runs/transfer/reconstruction"
    batch_size: int = 8
    model: dict[str, Any] = field(default_factory=dict)  # overrides of ReconstructionConfig


def load_frozen(path: Path, arch: str) -> nn.Module:
    """A trained teacher (its averaged weights when it has them), in eval mode with
    gradients off."""
    ckpt = weights_to_use(read_checkpoint(path))
    check_arch(ckpt, arch, path)  # before building: another architecture's config does not fit the builder
    builders = {RECOGNITION_ARCH: build_recognition, RECONSTRUCTION_ARCH: build_reconstruction}
    model = builders[arch](**ckpt["model_cfg"])
    load_weights(ckpt, model, arch, model_config_dict(model), path)
    return model.eval().requires_grad_(False)


def train_recognition(cfg: RecognitionTrainConfig) -> Path:
    """Train (or resume) the rainy / rain-free classifier; report held-out accuracies."""
    rainy, rainy_held = split_holdout(load_sources(cfg.rainy_dirs, cfg.max_side, cfg.crop), cfg.holdout)
    clean, clean_held = split_holdout(load_sources(cfg.clean_dirs, cfg.max_side, cfg.crop, cfg.exclude_like),
                                      cfg.holdout)
    log.info("recognition: %d rainy / %d clean training images", sum(map(len, rainy)), sum(map(len, clean)))
    loop.seed(cfg)
    model = build_recognition(**cfg.model)
    run = loop.open_run(cfg, RECOGNITION_ARCH, model, model_config_dict(model))

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = recognition_batch(rainy, clean, cfg.batch_size, cfg.crop, run.rng, cfg.synthetic_share)
        return run.tensor(x), run.tensor(y)

    def loss_fn(b: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = b
        logit = model(x)
        accuracy = ((logit.detach() > 0).float() == y).float().mean().item()
        return F.binary_cross_entropy_with_logits(logit, y), {"acc": accuracy}

    loop.run_loop(run, batch, loss_fn)
    if run.step == cfg.steps:
        report = holdout_report(model.eval(), rainy_held, clean_held, cfg.eval_crops, cfg.crop, cfg.seed)
        log.info("recognition held-out accuracy: %s", report)
        (Path(cfg.out_dir) / "holdout.json").write_text(json.dumps(report, indent=2))
        run.save({"holdout": report})
    return run.last


@torch.no_grad()
def holdout_report(model: RecognitionTeacher, rainy: list[list[np.ndarray]], clean: list[list[np.ndarray]],
                   n: int, size: int, seed: int) -> dict[str, float]:
    """Accuracies on held-out images: real rainy and real clean crops (label-neutral
    augmentation), and held-out clean crops with synthetic rain (should be rainy) vs the
    very same crops with the same re-compression and no rain (should be clean)."""
    rng = np.random.default_rng(seed + 1)
    flat_rainy = [im for src in rainy for im in src]
    flat_clean = [im for src in clean for im in src]
    real_rainy = [label_neutral(rescaled_crop(flat_rainy[i % len(flat_rainy)], size, rng), rng)
                  for i in range(n)]
    real_clean = [label_neutral(rescaled_crop(flat_clean[i % len(flat_clean)], size, rng), rng)
                  for i in range(n)]
    base = [rescaled_crop(flat_clean[i % len(flat_clean)], size, rng) for i in range(n)]
    seeds = rng.integers(0, 2**31, n)
    synth_rainy = [label_neutral(synth.add_rain(b, rng), np.random.default_rng(s))
                   for b, s in zip(base, seeds)]
    jpeg_clean = [label_neutral(b, np.random.default_rng(s)) for b, s in zip(base, seeds)]

    def rainy_share(crops: list[np.ndarray]) -> float:
        return float((model(torch.from_numpy(to_batch(crops))) > 0).float().mean())

    report = {"real_rainy": rainy_share(real_rainy), "real_clean": 1 - rainy_share(real_clean),
              "synthetic_rain_on_clean": rainy_share(synth_rainy),
              "same_crops_no_rain": 1 - rainy_share(jpeg_clean)}
    return {k: round(v, 4) for k, v in report.items()}


@torch.no_grad()
def rain_score(model: RecognitionTeacher, image: np.ndarray, tile: int = 96, scale: float = 0.6) -> float:
    """Mean rain probability of an HxWx3 image over a grid of ``tile`` crops after a
    ``scale`` resize (the teacher saw rescaled crops of this size)."""
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    if h < tile or w < tile:  # too small for one tile: score it whole
        small, h, w = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA), tile, tile
    tiles = [small[y:y + tile, x:x + tile]
             for y in range(0, h - tile + 1, tile) for x in range(0, w - tile + 1, tile)]
    return float(model.rain_probability(torch.from_numpy(to_batch(tiles))).mean())


def train_reconstruction(cfg: ReconstructionTrainConfig) -> Path:
    """Train (or resume) the restoration teacher on degraded clean photos (labels free)."""
    clean = load_sources(cfg.clean_dirs, cfg.max_side, cfg.crop, cfg.exclude_like)
    loop.seed(cfg)
    model = build_reconstruction(**cfg.model)
    run = loop.open_run(cfg, RECONSTRUCTION_ARCH, model, model_config_dict(model))

    def batch() -> list[torch.Tensor]:
        return [run.tensor(a) for a in degraded_batch(clean, cfg.batch_size, cfg.crop, run.rng)]

    def loss_fn(b: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        degraded, target = b
        return F.l1_loss(model(degraded), target), {"input_l1": F.l1_loss(degraded, target).item()}

    return loop.run_loop(run, batch, loss_fn)
