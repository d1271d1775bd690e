"""Training data: clean backgrounds from folders, synthetic rain rendered on the fly.

Images that fail to decode are skipped with a warning and counted; an empty or
missing folder is a :class:`ConfigError`. Backgrounds that match a dev-set image
(same 32x32 thumbnail) are dropped so that dev scores stay honest, and so are files
whose names match a held-out pattern (the CamVid drive of the camvid dev sets).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from fnmatch import fnmatch
from pathlib import Path

import cv2
import numpy as np

from .. import synth
from ..errors import ConfigError, InputError
from ..io import images as io_images

log = logging.getLogger(__name__)


def list_images(folder: Path) -> list[Path]:
    """:func:`io.images.list_images <stream_derain.io.images.list_images>` of a data
    folder, a missing or empty one being a :class:`ConfigError` (a config names it)."""
    if not folder.is_dir():
        raise ConfigError(f"data folder not found: {folder}")
    try:
        return io_images.list_images(folder)
    except InputError:
        raise ConfigError(f"no images in data folder: {folder}") from None


def load_rgb(path: Path) -> np.ndarray | None:
    """HxWx3 float32 RGB in [0, 1], or None when the file does not decode."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def load_folders(folders: Iterable[str | Path], min_side: int = 0,
                 exclude_names: Iterable[str] = ()) -> list[np.ndarray]:
    """All decodable images of the folders but those whose names match ``exclude_names``
    (glob patterns); undecodable ones are warned about and counted."""
    images, bad = [], 0
    patterns = tuple(exclude_names)
    for folder in folders:
        for path in list_images(Path(folder)):
            if any(fnmatch(path.name, pat) for pat in patterns):
                continue
            img = load_rgb(path)
            if img is None:
                bad += 1
                log.warning("skipping undecodable image %s", path)
            elif min(img.shape[:2]) >= min_side:
                images.append(img)
    if bad:
        log.warning("skipped %d undecodable image(s)", bad)
    if not images:
        raise ConfigError(f"no usable images in {', '.join(map(str, folders))}")
    return images


def thumbnail(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)


def drop_overlaps(images: list[np.ndarray], exclude_dirs: Iterable[str | Path]) -> list[np.ndarray]:
    """Remove images whose thumbnail matches one in ``exclude_dirs`` (missing dirs are ignored)."""
    refs = []
    for folder in exclude_dirs:
        if Path(folder).is_dir():
            refs += [thumbnail(im) for im in load_folders([folder])]
    if not refs:
        return images
    ref = np.stack(refs)
    kept = [im for im in images if np.abs(ref - thumbnail(im)).mean(axis=(1, 2, 3)).min() > 0.01]
    if len(kept) < len(images):
        log.info("excluded %d background(s) that are dev-set images", len(images) - len(kept))
    return kept


def resize_area(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """HxWxC box resize to h x w x C, any C (OpenCV's area filter takes at most 4 channels)."""
    if img.shape[2] <= 4:
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return np.concatenate([cv2.resize(img[..., c:c + 3], (w, h), interpolation=cv2.INTER_AREA)
                           for c in range(0, img.shape[2], 3)], axis=2)


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size crop at a random scale in [0.6, 1] of the HxWxC source, randomly flipped."""
    h, w = img.shape[:2]
    scale = rng.uniform(max(0.6, size / min(h, w)), 1.0)
    if scale < 1.0:
        img = resize_area(img, max(size, round(w * scale)), max(size, round(h * scale)))
        h, w = img.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    crop = img[y:y + size, x:x + size]
    return crop[:, ::-1] if rng.uniform() < 0.5 else crop


def synthetic_pairs(backgrounds: list[np.ndarray], size: int, rng: np.random.Generator,
                    recipe: synth.PairRecipe = synth.PairRecipe(), bank: synth.StreakBank | None = None,
                    rain_free_every: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless (input, target) HxWx3 float32 crops (:func:`synth.rain_pair` with
    ``recipe``); every ``rain_free_every``-th pair is rain-free (target = input), 0 for none."""
    i = 0
    while True:
        clean = np.ascontiguousarray(random_crop(backgrounds[int(rng.integers(len(backgrounds)))], size, rng))
        i += 1
        yield synth.rain_pair(clean, rng, recipe, bank, rain_free=bool(rain_free_every)
                              and i % rain_free_every == 0)


def rain_free_every(fraction: float, batch_size: int) -> int:
    """Period of rain-free pairs so that every batch of ``batch_size`` holds about
    ``fraction`` of them (at least one when ``fraction`` > 0)."""
    if fraction <= 0:
        return 0
    return max(1, min(batch_size, round(1.0 / fraction)))


def batch_arrays(pairs: Iterator[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rainy, clean) as Nx3xHxW float32."""
    rainy, clean = zip(*(next(pairs) for _ in range(n)))
    return (np.stack(rainy).transpose(0, 3, 1, 2).copy(), np.stack(clean).transpose(0, 3, 1, 2).copy())
