"""Still images in and out (OpenCV), as HxWx3 uint8 RGB."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, OutputError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def is_image(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))
    if not files:
        raise InputError(f"no images in {folder}")
    return files


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot decode image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    try:
        ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None
    if not ok:
        raise OutputError(f"cannot write {path}")
