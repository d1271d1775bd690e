"""Still images in and out (OpenCV). The network sees HxWx3 uint8 RGB; what the file
had beyond that is kept: grey stays grey, an alpha channel is carried over untouched,
and 16-bit images stay 16-bit (the network's change is applied to the 16-bit pixels,
so detail below 8 bits survives where nothing was changed)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, OutputError

log = logging.getLogger(__name__)
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def is_image(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """The images of a folder, sorted; hidden and unreadable files are skipped with a
    warning and a count."""
    files, skipped = [], []
    for p in sorted(folder.iterdir()):
        if not is_image(p) or not p.is_file():
            continue
        if p.name.startswith(".") or not os.access(p, os.R_OK):
            skipped.append(p.name)
            continue
        files.append(p)
    if skipped:
        log.warning("skipped %d hidden or unreadable file(s) in %s: %s", len(skipped), folder,
                    ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    if not files:
        raise InputError(f"no images in {folder}")
    return files


@dataclass
class Image:
    """A decoded file: ``rgb8`` for the network, and what it takes to write back the
    file's own layout (``alpha``, ``grey``, ``pixels`` at 16 bits)."""

    rgb8: np.ndarray
    grey: bool = False
    alpha: np.ndarray | None = None  # HxW, the file's dtype
    pixels16: np.ndarray | None = None  # HxWx3 uint16 RGB of a 16-bit file

    def restore(self, out8: np.ndarray) -> np.ndarray:
        """The file layout (BGR[A] or grey, uint8 or uint16) of a derained ``rgb8``."""
        if self.pixels16 is not None:
            delta = out8.astype(np.int32) - self.rgb8.astype(np.int32)
            rgb = np.clip(self.pixels16.astype(np.int32) + delta * 257, 0, 65535).astype(np.uint16)
        else:
            rgb = out8
        if self.grey:
            img = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            return img if self.alpha is None else np.dstack([img, self.alpha])
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        return bgr if self.alpha is None else np.dstack([bgr, self.alpha])


def _decode(path: Path) -> np.ndarray:
    try:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InputError(f"cannot decode image {path}: {exc}") from None
    if img is None or img.size == 0:
        raise InputError(f"cannot decode image {path}")
    return img


def _warn_pages(path: Path) -> None:
    """Say that an animated (WebP, ...) or multi-page (TIFF) image loses all but its
    first picture: images are read as one picture."""
    try:
        count = cv2.imcount(str(path))
    except cv2.error:
        return
    if count > 1:
        log.warning("%s holds %d pictures (animated or multi-page): only the first is derained and "
                    "written (convert it to a video to keep them all)", path, count)


def read_image(path: Path) -> Image:
    img = _decode(path)
    _warn_pages(path)
    if img.dtype not in (np.uint8, np.uint16):
        log.warning("%s: %s pixels are converted to 8 bits", path, img.dtype)
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    grey = img.ndim == 2 or img.shape[2] in (1, 2)
    alpha = img[..., -1] if img.ndim == 3 and img.shape[2] in (2, 4) else None
    colour = img if img.ndim == 2 else img[..., :1] if grey else img[..., :3]
    rgb = cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_GRAY2RGB if grey else cv2.COLOR_BGR2RGB)
    if rgb.dtype == np.uint16:
        return Image((rgb // 257).astype(np.uint8), grey, alpha, rgb)
    return Image(rgb, grey, alpha)


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB (alpha dropped, grey expanded, 16 bits reduced)."""
    return read_image(path).rgb8


def write_image(path: Path, img: np.ndarray) -> None:
    """Write an OpenCV-layout image (BGR[A] or grey, uint8 or uint16)."""
    if img.dtype == np.uint16 and path.suffix.lower() in (".jpg", ".jpeg", ".webp", ".bmp"):
        log.warning("%s cannot hold 16 bits: writing 8 bits", path.name)
        img = (img // 257).astype(np.uint8)
    try:
        ok = cv2.imwrite(str(path), img)
    except cv2.error as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None
    if not ok:
        raise OutputError(f"cannot write {path}")


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    """HxWxC (any dtype), box-resized only ever down so that max(H, W) <= ``max_side``;
    the image itself when it already fits."""
    h, w = img.shape[:2]
    f = max_side / max(h, w)
    if f >= 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
