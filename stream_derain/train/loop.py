"""The one training loop every stage runs (nanoGPT-style: one readable function).

A stage calls :func:`seed`, builds its model, opens a :class:`Run` with
:func:`open_run` (the optimiser, the data RNG, and the resume from the run folder's
``last.pt``: weights, optimiser, RNG states, step and wall time so far), then hands
:func:`run_loop` two functions of its own: ``batch()`` draws the next batch (from
``run.rng``) and ``loss_fn(batch)`` returns the loss and the parts to log. The loop
owns everything else: the LR (linear warm-up, then cosine decay to ``min_lr``), the
optimiser step, the log every ``log_every`` steps, and the checkpoint every
``ckpt_every`` steps and at the end of the invocation (``steps``, or ``stop_at``).

A checkpoint (:func:`~.checkpoint.save_checkpoint`) holds ``arch``, ``model_cfg``,
``model``, ``optimizer``, ``step``, ``train_cfg``, ``rng`` and ``extra`` with
``train_seconds``, the short hashes of the files the run started from (``parents``,
:mod:`.lineage`) and the state of the modules trained beside the model (``modules``,
e.g. distillation's adapters). A resumed run draws the same batches and reaches the
same weights as one that was never interrupted.

With ``ema`` > 0 the loop also keeps an exponential moving average of the weights
(torch's :class:`~torch.optim.swa_utils.AveragedModel`), updated after every step
and saved as the checkpoint's ``ema``: a fine-tuning run at a small learning rate
walks around its minimum, and the average of the walk depends far less on the seed
than the point where it stops (Polyak averaging; docs/derainer_v5.md measures it).
Export and later stages take the average (:func:`~.checkpoint.weights_to_use`); a
resumed run continues both.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..errors import ModelError
from .checkpoint import load_weights, read_checkpoint, save_checkpoint, set_rng_state
from .config import StageConfig
from .lineage import parent_hashes

log = logging.getLogger(__name__)
B = TypeVar("B")  # a stage's batch


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_at(step: int, cfg: StageConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    u = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(u, 1.0)))


def last_checkpoint(cfg: StageConfig) -> Path:
    """The run folder's checkpoint, written every ``ckpt_every`` steps and resumed from."""
    return Path(cfg.out_dir) / "last.pt"


def resumes(cfg: StageConfig) -> bool:
    """Whether :func:`open_run` will resume (and a stage's ``init`` is not wanted)."""
    return last_checkpoint(cfg).exists()


def seed(cfg: StageConfig) -> None:
    """Threads, and torch's (and Python's and NumPy's global) seed, before any model is
    built: a run's initial weights depend on ``seed`` only, so an interrupted and
    resumed run equals a straight one. (Batches come from :attr:`Run.rng`.)"""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)


@dataclass
class Run:
    """Mutable state of one stage's run: model, optimiser, data RNG, step, wall time."""

    cfg: StageConfig
    arch: str
    model: nn.Module
    model_cfg: dict[str, Any]
    opt: torch.optim.Optimizer
    rng: np.random.Generator  # the data RNG: batches are drawn from it
    device: torch.device
    step: int = 0
    seconds: float = 0.0
    modules: dict[str, nn.Module] = field(default_factory=dict)  # saved beside the model (adapters)
    ema: AveragedModel | None = None  # the weights' moving average (cfg.ema > 0)
    parents: dict[str, str] = field(default_factory=dict)  # parent file -> short sha256 when read

    @property
    def last(self) -> Path:
        return last_checkpoint(self.cfg)

    @property
    def end(self) -> int:
        """The step this invocation stops at."""
        return min(self.cfg.stop_at, self.cfg.steps) if self.cfg.stop_at else self.cfg.steps

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def save(self, extra: dict[str, Any] | None = None) -> None:
        """Checkpoint to ``last.pt`` (atomically); ``extra`` joins the stage's numbers."""
        state = {"train_seconds": round(self.seconds, 1), "parents": self.parents,
                 "modules": {k: m.state_dict() for k, m in self.modules.items()}, **(extra or {})}
        save_checkpoint(self.last, arch=self.arch, model_cfg=self.model_cfg, model=self.model,
                        optimizer=self.opt, step=self.step, train_cfg=asdict(self.cfg), data_rng=self.rng,
                        extra=state, ema=self.ema)


def open_run(cfg: StageConfig, arch: str, model: nn.Module, model_cfg: dict[str, Any],
             modules: dict[str, nn.Module] | None = None,
             boosted: Sequence[nn.Parameter] = (), boost: float = 1.0) -> Run:
    """Move the model (and ``modules``) to the device, build AdamW over them, and resume
    from ``last.pt`` when it exists. Call :func:`seed` before building the model.
    ``boosted`` parameters (of ``model``) train at ``boost`` times the learning rate."""
    device = pick_device(cfg.device)
    modules = modules or {}
    model.to(device).train()
    ids = {id(p) for p in boosted}
    params = [*(p for p in model.parameters() if id(p) not in ids),
              *(p for m in modules.values() for p in m.to(device).parameters())]
    groups = [{"params": params, "lr_mult": 1.0}]
    if ids:
        groups.append({"params": list(boosted), "lr_mult": boost})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = Run(cfg, arch, model, model_cfg, opt, np.random.default_rng(cfg.seed), device, modules=modules)
    run.parents = parent_hashes(arch, asdict(cfg))  # before a later export can replace them
    if cfg.ema:
        run.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema))
    if run.last.exists():
        ckpt = read_checkpoint(run.last)
        load_weights(ckpt, model, arch, model_cfg, run.last)
        saved = ckpt["extra"].get("modules", {})
        for name, module in modules.items():
            if name not in saved:
                raise ModelError(f"{run.last} holds no {name!r} module to resume")
            module.load_state_dict(saved[name])
        run.opt.load_state_dict(ckpt["optimizer"])
        if run.ema is not None:
            if "ema" not in ckpt:
                raise ModelError(f"{run.last} holds no weight average to resume (ema {cfg.ema})")
            run.ema.load_state_dict(ckpt["ema"])
        set_rng_state(ckpt["rng"], run.rng)
        run.step, run.seconds = ckpt["step"], ckpt["extra"].get("train_seconds", 0.0)
        run.parents = ckpt["extra"].get("parents", {})  # what the run started from, not what is there now
        log.info("resumed %s from %s at step %d", arch, run.last, run.step)
    return run


def _number(v: float | torch.Tensor) -> float:
    return v.item() if isinstance(v, torch.Tensor) else float(v)


def run_loop(run: Run, batch: Callable[[], B],
             loss_fn: Callable[[B], tuple[torch.Tensor, Mapping[str, Any]]]) -> Path:
    """Train from ``run.step`` to ``run.end``; returns the path of ``last.pt``.

    Each step: set the LR, draw ``batch()``, ``loss, parts = loss_fn(batch)``, step the
    optimiser. ``loss`` and ``parts`` (floats or 0-d tensors) are logged as running
    means every ``log_every`` steps and at the end. A run of 0 steps saves its model as
    initialised (a composition of its parents, with their lineage)."""
    cfg = run.cfg
    start, base = time.time(), run.seconds
    t0, running = start, []
    while run.step < run.end:
        for group in run.opt.param_groups:
            group["lr"] = lr_at(run.step, cfg) * group.get("lr_mult", 1.0)
        loss, parts = loss_fn(batch())
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        run.step += 1
        running.append({"loss": loss.item(), **{k: _number(v) for k, v in parts.items()}})
        if run.step % cfg.log_every == 0 or run.step == run.end:
            means = " ".join(f"{k} {np.mean([r[k] for r in running]):.4f}" for k in running[-1])
            log.info("%s step %d/%d %s lr %.2e %.2fs/step", run.arch, run.step, cfg.steps, means,
                     lr_at(run.step, cfg), (time.time() - t0) / len(running))
            t0, running = time.time(), []
        if run.step % cfg.ckpt_every == 0 or run.step == run.end:
            run.seconds = base + time.time() - start
            run.save()
    if run.end == 0 and not run.last.is_file():  # no steps: the model its parents compose
        run.save()
    return run.last
