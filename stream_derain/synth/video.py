"""Rain over video: layers that fall coherently from frame to frame.

In :func:`rain_over_frames` every depth layer falls with its own speed (nearer layers
faster and longer), so rain moves coherently between frames over any clip;
:func:`rainy_video` renders it over a simulated camera pan/zoom of a still photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .render import (
    RainParams,
    StreakBank,
    compose,
    dense_sheet,
    drop_field,
    layer_specs,
    photometric_specs,
    rain_tint,
    render_streaks,
    sample_params,
    transmission_map,
)


def rain_over_frames(frames: list[np.ndarray], rng: np.random.Generator, params: RainParams | None = None,
                     bank: StreakBank | None = None,
                     times: Sequence[float] | None = None) -> list[np.ndarray]:
    """Temporally coherent rain over a clip (a list of HxWx3 float32 frames in [0, 1]).

    Each depth layer owns a streak field larger than the frame that scrolls along its
    fall direction by its own speed every frame (wrapping), so streaks move coherently;
    the veil and the tint stay fixed. ``times`` (default 0, 1, 2, ...) places each frame
    in time, in frames of the rain's own rate: a clip subsampled to a lower frame rate,
    or rain falling faster, is ``times`` spaced wider (rain moves farther between two
    frames). A dense sheet (``params.dense``) scrolls like the nearest layer."""
    p = params or sample_params(rng, photometric=bank is not None)
    h, w = frames[0].shape[:2]
    specs = layer_specs(p)
    photo_specs = photometric_specs(p) if bank is not None else []
    margin = int(max([s[1] for s in specs] + [48.0])) + 8
    big = (h + 2 * margin, w + 2 * margin)
    layers = [(render_streaks(drop_field(big, s[0], rng), *s[1:]), s[3], max(s[1] * 0.8, 4.0))
              for s in specs]
    layers += [(bank.canvas(big, rng, scale, angle, keep) * bright, angle, 18.0 * scale)
               for scale, angle, bright, keep in photo_specs]
    if p.dense > 0:
        layers.append((dense_sheet(big, p, rng), p.angle, max(p.dense_length * 0.8, 4.0)))
    t_map = transmission_map((h, w), p.haze, rng) if p.haze > 0 else None
    tint = rain_tint(rng)
    out = []
    for i, bg in enumerate(frames):
        u = float(times[i]) if times is not None else float(i)
        streaks = np.zeros((h, w), np.float32)
        for layer, angle, speed in layers:
            a = np.deg2rad(angle)
            shifted = np.roll(layer, (int(round(speed * u * np.cos(a))), int(round(speed * u * np.sin(a)))),
                              axis=(0, 1))
            streaks = np.maximum(streaks, shifted[margin:margin + h, margin:margin + w])
        out.append(compose(bg, streaks, p, t_map, tint))
    return out


@dataclass(frozen=True)
class CameraPath:
    """Pan/zoom over a source image: crop centre moves from start to end, zoom likewise."""

    start: tuple[float, float]
    end: tuple[float, float]
    zoom: tuple[float, float]


def camera_crop(src: np.ndarray, out_hw: tuple[int, int], path: CameraPath, u: float) -> np.ndarray:
    """Frame at progress ``u`` in [0, 1] of a camera path, resampled to ``out_hw``."""
    h, w = out_hw
    sh, sw = src.shape[:2]
    cx = path.start[0] + (path.end[0] - path.start[0]) * u
    cy = path.start[1] + (path.end[1] - path.start[1]) * u
    z = path.zoom[0] + (path.zoom[1] - path.zoom[0]) * u
    base = min(sw / w, sh / h)  # largest crop with the output's aspect ratio
    cw, ch = w * base / z, h * base / z
    x0 = np.clip(cx * sw - cw / 2, 0, sw - cw)
    y0 = np.clip(cy * sh - ch / 2, 0, sh - ch)
    m = np.array([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]], np.float32)
    return cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def random_camera(rng: np.random.Generator) -> CameraPath:
    c0 = (float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65)))
    c1 = (c0[0] + float(rng.uniform(-0.15, 0.15)), c0[1] + float(rng.uniform(-0.08, 0.08)))
    z0 = float(rng.uniform(1.0, 1.3))
    return CameraPath(c0, c1, (z0, z0 * float(rng.uniform(0.95, 1.25))))


def rainy_video(src: np.ndarray, n_frames: int, out_hw: tuple[int, int], rng: np.random.Generator,
                params: RainParams | None = None, camera: CameraPath | None = None,
                bank: StreakBank | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(rainy frames, clean frames), each a list of HxWx3 float32 in [0, 1]: a camera
    pan/zoom over the still ``src`` with coherent rain (:func:`rain_over_frames`)."""
    p = params or sample_params(rng, photometric=bank is not None)
    cam = camera or random_camera(rng)
    clean = [camera_crop(src, out_hw, cam, i / max(n_frames - 1, 1)) for i in range(n_frames)]
    return rain_over_frames(clean, rng, p, bank), clean
