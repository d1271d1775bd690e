"""Small synthetic sequences for the temporal smoother tests (HxWx3 uint8 RGB)."""

from __future__ import annotations

import cv2
import numpy as np

H, W = 120, 160


def texture(rng: np.random.Generator, h: int = H, w: int = W, grain: float = 3.0) -> np.ndarray:
    """Smooth random colour texture: HxWx3 uint8 with features DIS can track."""
    noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), grain)
    tex = (tex - tex.min()) / (tex.max() - tex.min() + 1e-6) * 200 + 25
    return tex.astype(np.uint8)


def flicker(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """The frame with independent per-frame noise (a stand-in for per-frame derain flicker)."""
    noisy = frame.astype(np.float32) + rng.normal(0, sigma, frame.shape)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def moving_square(bg: np.ndarray, patch: np.ndarray, n: int, step: int, y: int = 40, x0: int = 8
                  ) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Frames of ``patch`` moving right by ``step`` px/frame over a static ``bg``, and the
    top-left corner per frame."""
    frames, corners = [], []
    s = patch.shape[0]
    for i in range(n):
        f = bg.copy()
        x = x0 + step * i
        f[y:y + s, x:x + s] = patch
        frames.append(f)
        corners.append((y, x))
    return frames, corners


def streaks(rng: np.random.Generator, h: int = H, w: int = W, n: int = 40, amp: float = 80.0) -> np.ndarray:
    """HxW float32 layer of ``n`` bright vertical streaks (20x3 px) at random places."""
    layer = np.zeros((h, w), np.float32)
    for _ in range(n):
        y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 3))
        layer[y:y + 20, x:x + 3] = amp
    return layer


def rain_pair(clean: np.ndarray, rng: np.random.Generator, remnant: float, n: int = 40
              ) -> tuple[np.ndarray, np.ndarray]:
    """(rainy, derained) of a clean frame: new streaks every frame, of which the
    "network" leaves ``remnant`` (0: removes them all)."""
    layer = streaks(rng, *clean.shape[:2], n=n)[..., None]
    add = lambda g: np.clip(clean + g * layer + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    return add(1.0), add(remnant)
