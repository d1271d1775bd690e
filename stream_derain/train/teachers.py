"""Training the two teachers (``train recognition``, ``train reconstruction``), and the
run bookkeeping every transfer stage shares.

Each stage has its own frozen config dataclass (unknown keys are errors), writes
``out_dir/last.pt`` atomically every ``ckpt_every`` steps with the unwrapped model,
optimiser, RNG states, step and the wall time spent so far, and resumes from it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import synth
from ..model.teachers import (
    RecognitionTeacher,
    build_recognition,
    build_reconstruction,
    model_config_dict,
)
from .checkpoint import check_arch, load_weights, read_checkpoint, save_checkpoint, set_rng_state
from .config import DATA_ROOT
from .supervised import lr_at, pick_device
from .transfer_data import (
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
CLEAN_DIRS = tuple(str(DATA_ROOT / "clean" / d) for d in ("cbsd68", "kodak24", "mcmaster"))
RAINY_DIRS = tuple(str(DATA_ROOT / d) for d in ("real_rain", "real_video/ra1", "real_video/rb2"))
DEV_CLEAN = tuple(str(DATA_ROOT / "pairs" / s / "clean") for s in ("sirr20", "heavy25"))


@dataclass(frozen=True)
class StageConfig:
    """Fields every transfer stage has; each stage's dataclass adds its own."""

    out_dir: str = "runs/stage"
    clean_dirs: tuple[str, ...] = CLEAN_DIRS
    exclude_like: tuple[str, ...] = DEV_CLEAN  # dev-set backgrounds, never trained on
    max_side: int = 720  # images are shrunk on load so that no side exceeds this
    steps: int = 1500
    batch_size: int = 16
    crop: int = 96
    lr: float = 1e-3
    min_lr: float = 2e-5
    warmup: int = 100
    seed: int = 0
    stop_at: int = 0  # end this invocation after this step (checkpointed); 0 runs to ``steps``
    log_every: int = 50
    ckpt_every: int = 250
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    device: str = "auto"


@dataclass(frozen=True)
class RecognitionTrainConfig(StageConfig):
    """Recognition teacher: real rainy vs real rain-free crops, label-neutral augmentation."""

    out_dir: str = "runs/transfer/recognition"
    rainy_dirs: tuple[str, ...] = RAINY_DIRS
    holdout: float = 0.2  # last share of every folder, held out for the report
    eval_crops: int = 256  # held-out crops per class in the report
    synthetic_share: float = 0.0  # of the rainy crops: clean training crops with synthetic rain
    model: dict[str, Any] = field(default_factory=dict)  # overrides of RecognitionConfig


@dataclass(frozen=True)
class ReconstructionTrainConfig(StageConfig):
    """Reconstruction teacher: clean photos restored from veiled / low-contrast / blurred ones."""

    out_dir: str = "runs/transfer/reconstruction"
    batch_size: int = 8
    model: dict[str, Any] = field(default_factory=dict)  # overrides of ReconstructionConfig


@dataclass
class Run:
    """Mutable state of one stage's run: model, optimiser, data RNG, step, wall time."""

    cfg: StageConfig
    arch: str
    model: nn.Module
    model_cfg: dict[str, Any]
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    device: torch.device
    step: int = 0
    seconds: float = 0.0
    modules: dict[str, nn.Module] = field(default_factory=dict)  # saved beside the model (adapters)
    _t0: float = field(default_factory=time.time)
    _running: list[dict[str, float]] = field(default_factory=list)

    @property
    def last(self) -> Path:
        return Path(self.cfg.out_dir) / "last.pt"

    @property
    def end(self) -> int:
        return min(self.cfg.stop_at, self.cfg.steps) if self.cfg.stop_at else self.cfg.steps

    def set_lr(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def after_step(self, parts: dict[str, float]) -> None:
        """Count the step, log running means every ``log_every``, checkpoint every ``ckpt_every``."""
        self.step += 1
        self._running.append(parts)
        if self.step % self.cfg.log_every == 0 or self.step == self.end:
            now = time.time()
            means = " ".join(f"{k} {np.mean([p[k] for p in self._running]):.4f}" for k in parts)
            log.info("%s step %d/%d %s lr %.2e %.2fs/step", self.arch, self.step, self.cfg.steps, means,
                     lr_at(self.step, self.cfg), (now - self._t0) / len(self._running))
            self.seconds += now - self._t0
            self._t0, self._running = now, []
        if self.step % self.cfg.ckpt_every == 0 or self.step == self.end:
            self.save()

    def save(self, extra: dict[str, Any] | None = None) -> None:
        state = {"train_seconds": round(self.seconds, 1),
                 "modules": {k: m.state_dict() for k, m in self.modules.items()}, **(extra or {})}
        save_checkpoint(self.last, arch=self.arch, model_cfg=self.model_cfg, model=self.model,
                        optimizer=self.opt, step=self.step, train_cfg=asdict(self.cfg), data_rng=self.rng,
                        extra=state)


def seed_stage(cfg: StageConfig) -> None:
    """Threads and torch's seed, before any model is built: a run's initial weights
    depend on ``seed`` only, so an interrupted and resumed run equals a straight one."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)


def open_run(cfg: StageConfig, arch: str, model: nn.Module, model_cfg: dict[str, Any],
             modules: dict[str, nn.Module] | None = None) -> Run:
    """Build the optimiser over the model (and ``modules``), resume from ``last.pt``.
    Call :func:`seed_stage` before building the model."""
    device = pick_device(cfg.device)
    modules = modules or {}
    model.to(device).train()
    params = [*model.parameters(), *(p for m in modules.values() for p in m.to(device).parameters())]
    run = Run(cfg, arch, model, model_cfg, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0),
              np.random.default_rng(cfg.seed), device, modules=modules)
    if run.last.exists():
        ckpt = read_checkpoint(run.last)
        load_weights(ckpt, model, arch, model_cfg, run.last)
        for name, module in modules.items():
            module.load_state_dict(ckpt["extra"]["modules"][name])
        run.opt.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"], run.rng)
        run.step, run.seconds = ckpt["step"], ckpt["extra"].get("train_seconds", 0.0)
        log.info("resumed %s from %s at step %d", arch, run.last, run.step)
    return run


def load_frozen(path: Path, arch: str) -> nn.Module:
    """A trained teacher, in eval mode with gradients off."""
    ckpt = read_checkpoint(path)
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
    seed_stage(cfg)
    model = build_recognition(**cfg.model)
    run = open_run(cfg, RECOGNITION_ARCH, model, model_config_dict(model))
    while run.step < run.end:
        run.set_lr()
        x, y = recognition_batch(rainy, clean, cfg.batch_size, cfg.crop, run.rng, cfg.synthetic_share)
        logit = model(run.tensor(x))
        loss = F.binary_cross_entropy_with_logits(logit, run.tensor(y))
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        accuracy = ((logit.detach() > 0).float() == run.tensor(y)).float().mean().item()
        run.after_step({"loss": loss.item(), "acc": accuracy})
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
    seed_stage(cfg)
    model = build_reconstruction(**cfg.model)
    run = open_run(cfg, RECONSTRUCTION_ARCH, model, model_config_dict(model))
    while run.step < run.end:
        run.set_lr()
        degraded, target = (run.tensor(a) for a in degraded_batch(clean, cfg.batch_size, cfg.crop, run.rng))
        out = model(degraded)
        loss = F.l1_loss(out, target)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        run.after_step({"loss": loss.item(), "input_l1": F.l1_loss(degraded, target).item()})
    return run.last
