"""The grown teacher's outputs on real rainy frames: the distilled student's real pairs.

Distillation (issue 11, item 3): the grown teacher (:mod:`stream_derain.model.grown_teacher`)
derains every real rainy frame of ``real_dirs`` once, box-resized so that its long
side is at most ``max_side`` pixels (the video resolutions the product runs at); aligned
random crops of (frame, teacher output) then take ``real_share`` of every batch's
places beside the synthetic pairs. Synthetic pairs teach the student the clean
background where it is known; the real pairs teach it what the larger teacher does
to rain that no synthesiser drew. Clean frames need no teacher: the rain-free pairs
(target = input) are what a teacher that does no harm would output on them.

The last ``holdout`` share of every folder (in name order) is never used, so that the
real-rain change measured on those frames stays held out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..io.images import shrink
from ..model.grown_teacher import Derainer
from .data import list_images, load_rgb, random_crop

log = logging.getLogger(__name__)


def training_frames(folders: Iterable[str | Path], holdout: float) -> list[Path]:
    """The first ``1 - holdout`` of each folder's images, in name order."""
    paths: list[Path] = []
    for folder in folders:
        files = list_images(Path(folder))
        paths += files[:max(1, round(len(files) * (1.0 - holdout)))]
    return paths


@torch.no_grad()
def derain_frame(model: Derainer, img: np.ndarray) -> np.ndarray:
    """HxWx3 float32 in [0, 1] through ``model`` (reflect-padded to its multiple): HxWx3."""
    h, w = img.shape[:2]
    m = model.multiple
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    x = F.pad(x, (0, -w % m, 0, -h % m), mode="reflect")
    return model(x)[0, :, :h, :w].numpy().transpose(1, 2, 0).copy()


def teacher_pairs(model: Derainer, folders: Iterable[str | Path], holdout: float, max_side: int,
                  min_side: int) -> list[np.ndarray]:
    """HxWx6 float32 arrays (real frame, teacher output) of every training frame of the
    folders; undecodable files and frames smaller than ``min_side`` are skipped with a count."""
    model = model.eval().float().cpu()
    pairs, skipped = [], 0
    for path in training_frames(folders, holdout):
        img = load_rgb(path)
        if img is None or min(img.shape[:2]) < min_side:
            skipped += 1
            continue
        img = shrink(img, max_side)
        if min(img.shape[:2]) < min_side:
            skipped += 1
            continue
        pairs.append(np.concatenate([img, derain_frame(model, img)], axis=2))
    if skipped:
        log.warning("skipped %d real frame(s): undecodable or smaller than %d px", skipped, min_side)
    log.info("teacher targets on %d real rainy frames", len(pairs))
    return pairs


def real_crops(pairs: list[np.ndarray], size: int, rng: np.random.Generator
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless aligned (real rainy, teacher output) size x size x 3 crops."""
    while True:
        crop = random_crop(pairs[int(rng.integers(len(pairs)))], size, rng)
        yield np.ascontiguousarray(crop[..., :3]), np.ascontiguousarray(crop[..., 3:])


def mixed(synthetic: Iterator[tuple[np.ndarray, np.ndarray]], real: Iterator[tuple[np.ndarray, np.ndarray]],
          share: float, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each pair from ``real`` with probability ``share``, else from ``synthetic``."""
    while True:
        yield next(real) if rng.uniform() < share else next(synthetic)
