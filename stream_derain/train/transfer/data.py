"""Data of the task-transfer recipe: real rainy / rain-free images, label-neutral
augmentation, rain-like degradations of clean photos, and the fixed few-pair set.

Everything is HxWx3 float32 RGB in [0, 1] until :func:`to_batch` stacks crops into
Nx3xHxW. Images are downscaled on load so that no side exceeds ``max_side`` (the
real rainy set holds a 2848x4288 photo); undecodable files are skipped with a
warning and counted, an empty or missing folder is a :class:`ConfigError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from ... import synth
from ...errors import ConfigError
from ..data import drop_overlaps, list_images, load_rgb, random_crop

log = logging.getLogger(__name__)
Sources = list[list[np.ndarray]]  # images per source folder


def load_capped(folder: str | Path, max_side: int, min_side: int) -> list[np.ndarray]:
    """The decodable images of one folder, sorted by name, shrunk to ``max_side``."""
    images, bad = [], 0
    for path in list_images(Path(folder)):
        img = load_rgb(path)
        if img is None:
            bad += 1
            log.warning("skipping undecodable image %s", path)
            continue
        scale = max_side / max(img.shape[:2])
        if scale < 1:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if min(img.shape[:2]) >= min_side:
            images.append(img)
    if bad:
        log.warning("skipped %d undecodable image(s) in %s", bad, folder)
    if not images:
        raise ConfigError(f"no usable images in {folder}")
    return images


def load_sources(folders: Iterable[str], max_side: int, min_side: int,
                 exclude_like: Sequence[str] = ()) -> Sources:
    """One image list per folder (dev-set look-alikes dropped when ``exclude_like``)."""
    sources = []
    for folder in folders:
        images = load_capped(folder, max_side, min_side)
        sources.append(drop_overlaps(images, exclude_like) if exclude_like else images)
    return sources


def split_holdout(sources: Sources, fraction: float) -> tuple[Sources, Sources]:
    """(train, held-out) per source: the last ``fraction`` of each sorted folder is held
    out, a contiguous block, so that neighbouring video frames do not straddle the split."""
    train, held = [], []
    for images in sources:
        n_held = max(1, round(len(images) * fraction)) if fraction > 0 else 0
        if len(images) - n_held < 1:
            raise ConfigError(f"a folder of {len(images)} image(s) is too small to hold out {fraction:.0%}")
        train.append(images[:len(images) - n_held])
        held.append(images[len(images) - n_held:])
    return train, held


def pick(sources: Sources, rng: np.random.Generator) -> np.ndarray:
    """A random image: a source folder uniformly, then an image of it uniformly."""
    images = sources[int(rng.integers(len(sources)))]
    return images[int(rng.integers(len(images)))]


def rescaled_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size crop after a random rescale in [size/min side, 1] (at least 0.35)."""
    h, w = img.shape[:2]
    scale = rng.uniform(min(1.0, max(0.35, size / min(h, w))), 1.0)
    new_size = (max(size, round(w * scale)), max(size, round(h * scale)))
    img = cv2.resize(img, new_size, interpolation=cv2.INTER_AREA)
    y, x = int(rng.integers(0, img.shape[0] - size + 1)), int(rng.integers(0, img.shape[1] - size + 1))
    crop = img[y:y + size, x:x + size]
    return np.ascontiguousarray(crop[:, ::-1] if rng.uniform() < 0.5 else crop)


def recompress(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random down-and-up resampling, then JPEG at a random quality (skipped 20% of the time)."""
    h, w = img.shape[:2]
    f = rng.uniform(0.5, 1.0)
    if f < 0.95:
        small = cv2.resize(img, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.uniform() < 0.8:
        u8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 96))])
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    return img


def jitter_colour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey-world balance (half the time), random saturation, gamma and gain."""
    if rng.uniform() < 0.5:
        means = img.reshape(-1, 3).mean(axis=0) + 1e-3
        img = img * (means.mean() / means)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.5, 1.3)
    img = np.clip(img, 0, 1) ** rng.uniform(0.7, 1.4) * rng.uniform(0.8, 1.15)
    return np.clip(img, 0, 1).astype(np.float32)


def label_neutral(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The augmentation applied to BOTH classes, so that resolution, JPEG history and
    colour statistics do not identify where a crop came from."""
    return jitter_colour(recompress(crop, rng), rng)


def recognition_batch(rainy: Sources, clean: Sources, n: int, size: int,
                      rng: np.random.Generator, synthetic_share: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Half rainy, half clean augmented crops: (Nx3xHxW, N labels 1 = rainy).

    A ``synthetic_share`` of the rainy crops are clean training crops with synthetic
    rain added: the same photos then appear in both classes, so only the rain can tell
    them apart (de-confounding the source; real rainy crops stay the majority)."""
    labels = (np.arange(n) % 2 == 0).astype(np.float32)
    crops = []
    for y in labels:
        if y and rng.uniform() < synthetic_share:
            crop = synth.add_rain(rescaled_crop(pick(clean, rng), size, rng), rng)
        else:
            crop = rescaled_crop(pick(rainy if y else clean, rng), size, rng)
        crops.append(label_neutral(crop, rng))
    return to_batch(crops), labels


def degrade(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What rain scattering does besides streaks: a veil (transmission map + atmospheric
    light), contrast loss and Gaussian or motion blur, each applied at random."""
    img = clean
    if rng.uniform() < 0.7:
        t = synth.transmission_map(img.shape[:2], rng.uniform(0.15, 0.8), rng)[..., None]
        light = np.float32(rng.uniform(0.65, 1.0)) * rng.uniform(0.93, 1.0, 3).astype(np.float32)
        img = img * t + light * (1 - t)
    if rng.uniform() < 0.5:
        c = rng.uniform(0.55, 0.95)
        img = img * c + img.mean() * (1 - c)
    u = rng.uniform()
    if u < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=rng.uniform(0.5, 1.8))
    elif u < 0.6:
        img = cv2.filter2D(img, -1, synth.streak_kernel(rng.uniform(3, 9), 1.0, rng.uniform(-90, 90)),
                           borderType=cv2.BORDER_REFLECT)
    return np.clip(img, 0, 1).astype(np.float32)


def degraded_batch(clean: Sources, n: int, size: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean target), each Nx3xHxW."""
    targets = [rescaled_crop(pick(clean, rng), size, rng) for _ in range(n)]
    return to_batch([degrade(t, rng) for t in targets]), to_batch(targets)


def real_batch(rainy: Sources, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Nx3xHxW crops of real rainy images (no label, no augmentation beyond the crop)."""
    return to_batch([rescaled_crop(pick(rainy, rng), size, rng) for _ in range(n)])


def fixed_pairs(backgrounds: list[np.ndarray], count: int, size: int, heavy_fraction: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The few-pair set: ``count`` (rainy, clean) size x size pairs rendered by the
    synthesiser with their own ``seed`` (the same set whatever the training seed)."""
    rng = np.random.default_rng(seed)
    rainy, clean = [], []
    for i in range(count):
        bg = np.ascontiguousarray(random_crop(backgrounds[i % len(backgrounds)], size, rng))
        heavy = rng.uniform(0.5, 1.0) if rng.uniform() < heavy_fraction else rng.uniform(0.0, 0.5)
        rainy.append(synth.add_rain(bg, rng, synth.sample_params(rng, heavy)))
        clean.append(bg)
    return to_batch(rainy), to_batch(clean)


def pair_batch(rainy: np.ndarray, clean: np.ndarray, n: int, size: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n random aligned size x size crops (randomly flipped) of the fixed pairs."""
    idx = rng.integers(0, len(rainy), n)
    y, x = rng.integers(0, rainy.shape[2] - size + 1), rng.integers(0, rainy.shape[3] - size + 1)
    sl = (idx, slice(None), slice(y, y + size), slice(x, x + size))
    a, b = rainy[sl], clean[sl]
    if rng.uniform() < 0.5:
        a, b = a[..., ::-1], b[..., ::-1]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def to_batch(crops: list[np.ndarray]) -> np.ndarray:
    """HxWx3 crops -> Nx3xHxW float32."""
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32)
