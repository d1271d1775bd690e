"""Checkpoints: the unwrapped model, optimiser, RNG states and step, written atomically.

A checkpoint names its architecture and the model's hyperparameters, so loading one
into another architecture fails with a :class:`ModelError` that says which, not a
raw ``state_dict`` error. A run with a weight average (``StageConfig.ema``) also holds
``ema``, the averaged weights: what :func:`weights_to_use` hands to export and to
later stages, while a resumed run continues from ``model``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError


def rng_state(data_rng: np.random.Generator) -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(), "data": data_rng.bit_generator.state}


def set_rng_state(state: dict[str, Any], data_rng: np.random.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    data_rng.bit_generator.state = state["data"]


def save_checkpoint(path: Path, *, arch: str, model_cfg: dict[str, Any], model: nn.Module,
                    optimizer: torch.optim.Optimizer | None, step: int, train_cfg: dict[str, Any],
                    data_rng: np.random.Generator, extra: dict[str, Any] | None = None,
                    ema: nn.Module | None = None) -> None:
    """Write to ``path.tmp`` then rename, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "arch": arch, "model_cfg": model_cfg, "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step, "train_cfg": train_cfg, "rng": rng_state(data_rng), "extra": extra or {},
    }
    if ema is not None:  # an AveragedModel: its own state (the average and its count)
        payload["ema"] = ema.state_dict()
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise ModelError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, dict) or "arch" not in ckpt or "model" not in ckpt:
        raise ModelError(f"{path} is not a stream-derain checkpoint")
    return ckpt


def weights_to_use(ckpt: dict[str, Any]) -> dict[str, Any]:
    """``ckpt`` with the averaged weights as ``model`` when it holds an average: the
    weights a run delivers (export, distillation, a later stage's ``init``)."""
    if "ema" not in ckpt:
        return ckpt
    prefix = "module."
    average = {k[len(prefix):]: v for k, v in ckpt["ema"].items() if k.startswith(prefix)}
    return {**ckpt, "model": average}


def check_arch(ckpt: dict[str, Any], arch: str, source: Path | str = "checkpoint") -> None:
    """ModelError naming both when ``ckpt`` holds another architecture than ``arch``."""
    if ckpt["arch"] != arch:
        raise ModelError(f"{source} holds a {ckpt['arch']!r} model, expected {arch!r}")


def load_weights(ckpt: dict[str, Any], model: nn.Module, arch: str, model_cfg: dict[str, Any],
                 source: Path | str = "checkpoint") -> None:
    """Load ``ckpt['model']`` into ``model`` after checking architecture and hyperparameters."""
    check_arch(ckpt, arch, source)
    if ckpt.get("model_cfg") != model_cfg:
        raise ModelError(f"{source} is a {arch} with {ckpt.get('model_cfg')}, expected {model_cfg}")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{source} does not fit {arch}: {first}") from None
