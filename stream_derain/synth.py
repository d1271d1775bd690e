"""Rain synthesiser: streak layers over clean images, and rainy camera-motion videos.

Images are float32 HxWx3 RGB in [0, 1]. A rain layer is built from several depth
layers; each is sparse random drops smeared by a motion-blur line kernel (length,
width and angle per layer), scaled by a brightness. Heavy rain adds a veil
(atmospheric scattering: ``B * t + A * (1 - t)`` with a smooth transmission map).
For video, each depth layer's drop field falls with its own speed (nearer layers
faster and longer) while the background moves under a simulated camera pan/zoom,
so rain moves coherently between frames.

Only numpy and OpenCV are needed: the samples script, the eval video benchmark and
the training data all use this module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class RainParams:
    """One rain condition. Ranges are sampled by :func:`sample_params`."""

    layers: int = 2
    density: float = 0.02  # fraction of pixels seeding a drop, nearest layer
    length: float = 25.0  # streak length in pixels, nearest layer
    width: float = 1.5  # streak width in pixels (blur of the line kernel)
    angle: float = 0.0  # degrees from vertical, positive leans right
    brightness: float = 0.6  # peak streak intensity, nearest layer
    haze: float = 0.0  # veil strength in [0, 1)
    screen_blend: bool = False  # screen blend instead of clipped addition
    soft: float = 0.0  # brightness of an extra layer of long, wide, faint streaks (0: none)


def sample_params(rng: np.random.Generator, heavy: float | None = None) -> RainParams:
    """Random rain condition; ``heavy`` in [0, 1] (drawn when None) sets the severity."""
    h = rng.uniform(0, 1) if heavy is None else heavy
    return RainParams(
        layers=int(rng.integers(1, 4)),
        density=float(rng.uniform(0.002, 0.006) + 0.01 * h * rng.uniform(0.3, 1)),
        length=float(rng.uniform(8, 30) + 30 * h * rng.uniform(0, 1)),
        width=float(rng.uniform(0.6, 1.6) + 1.8 * h * rng.uniform(0, 1)),
        angle=float(rng.normal(0, 12) if rng.uniform() < 0.8 else rng.uniform(-40, 40)),
        brightness=float(rng.uniform(0.25, 0.55) + 0.3 * h),
        haze=float(rng.uniform(0.05, 0.3) * h if rng.uniform() < 0.5 else 0.0),
        screen_blend=bool(rng.uniform() < 0.3),
        soft=float(rng.uniform(0.08, 0.3)) if rng.uniform() < 0.35 else 0.0,
    )


def streak_kernel(length: float, width: float, angle: float) -> np.ndarray:
    """Normalised motion-blur kernel: a line of ``length`` px at ``angle`` degrees from
    vertical, blurred across to ``width``."""
    size = int(np.ceil(length + 4 * width)) | 1
    k = np.zeros((size, size), np.float32)
    c = size / 2.0
    a = np.deg2rad(angle)
    dx, dy = np.sin(a) * length / 2, np.cos(a) * length / 2
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))),
             1.0, 1, cv2.LINE_AA)
    if width > 1.0:
        k = cv2.GaussianBlur(k, (0, 0), sigmaX=(width - 1.0) / 2 + 1e-3)
    return k / max(float(k.sum()), 1e-6)


def drop_field(shape: tuple[int, int], density: float, rng: np.random.Generator) -> np.ndarray:
    """Sparse drop seeds: HxW float32, non-zero at about ``density`` of the pixels."""
    u = rng.random(shape, dtype=np.float32)
    return np.where(u < density, rng.uniform(0.5, 1.0, shape).astype(np.float32), 0.0).astype(np.float32)


def _layer_specs(p: RainParams) -> list[tuple[float, float, float, float, float]]:
    """(density, length, width, angle, brightness) per depth layer, nearest first."""
    specs = []
    for i in range(p.layers):
        depth = 1.0 / (1 + i)  # farther layers: shorter, thinner, dimmer, denser
        specs.append((p.density * (1 + 0.6 * i), max(p.length * depth, 3.0), max(p.width * depth, 0.6),
                      p.angle + 3.0 * i, p.brightness * (0.55 + 0.45 * depth)))
    if p.soft > 0:  # out-of-focus drops close to the lens: long, wide, faint
        specs.append((0.003, max(p.length * 4.0, 100.0), 4.0 + 2.0 * p.width, p.angle, p.soft))
    return specs


def render_streaks(field: np.ndarray, length: float, width: float, angle: float,
                   brightness: float) -> np.ndarray:
    """Smear a drop field into streaks: HxW -> HxW in [0, 1]."""
    k = streak_kernel(length, width, angle)
    s = cv2.filter2D(field, -1, k, borderType=cv2.BORDER_REFLECT)
    peak = float(k.max()) or 1.0
    return np.clip(s / peak * brightness, 0.0, 1.0)


def transmission_map(shape: tuple[int, int], haze: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth transmission in (0, 1]: less at the top (farther), with low-frequency noise."""
    h, w = shape
    coarse = rng.uniform(0, 1, (4, 4)).astype(np.float32)
    noise = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    depth = np.linspace(1.0, 0.3, h, dtype=np.float32)[:, None] * 0.7 + 0.3 * noise
    return np.exp(-haze * 2.0 * np.clip(depth, 0, 1)).astype(np.float32)


def compose(clean: np.ndarray, streaks: np.ndarray, p: RainParams, t: np.ndarray | None,
            tint: np.ndarray) -> np.ndarray:
    """Rainy image from a clean HxWx3 image, an HxW streak map and an optional
    transmission map. ``tint`` is the rain/veil colour (3,)."""
    img = clean
    if t is not None:
        img = img * t[..., None] + tint * (1.0 - t[..., None])
    s = streaks[..., None] * tint
    out = 1.0 - (1.0 - img) * (1.0 - s) if p.screen_blend else img + s
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def add_rain(clean: np.ndarray, rng: np.random.Generator, params: RainParams | None = None) -> np.ndarray:
    """Rainy version of ``clean`` (HxWx3 float32 in [0, 1]); the rain layer is
    ``rainy - clean``."""
    p = params or sample_params(rng)
    shape = clean.shape[:2]
    streaks = np.zeros(shape, np.float32)
    for dens, length, width, angle, bright in _layer_specs(p):
        streaks = np.maximum(streaks, render_streaks(drop_field(shape, dens, rng), length, width, angle,
                                                     bright))
    t = transmission_map(shape, p.haze, rng) if p.haze > 0 else None
    tint = np.float32(rng.uniform(0.85, 1.0)) * np.array([1.0, 1.0, 1.0], np.float32)
    return compose(clean, streaks, p, t, tint)


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
                params: RainParams | None = None, camera: CameraPath | None = None
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(rainy frames, clean frames), each a list of HxWx3 float32 in [0, 1].

    Each depth layer owns a drop field taller than the frame that scrolls down by
    its fall speed every frame (wrapping), so streaks move coherently."""
    p = params or sample_params(rng)
    cam = camera or random_camera(rng)
    h, w = out_hw
    specs = _layer_specs(p)
    margin = int(max(s[1] for s in specs)) + 8
    fields = [drop_field((h + 2 * margin, w + 2 * margin), s[0], rng) for s in specs]
    speeds = [max(s[1] * 0.8, 4.0) for s in specs]  # px per frame, along the streak
    t_map = transmission_map((h, w), p.haze, rng) if p.haze > 0 else None
    tint = np.full(3, rng.uniform(0.85, 1.0), np.float32)
    rainy, clean = [], []
    for i in range(n_frames):
        bg = camera_crop(src, out_hw, cam, i / max(n_frames - 1, 1))
        streaks = np.zeros((h, w), np.float32)
        for (dens, length, width, angle, bright), field, v in zip(specs, fields, speeds):
            a = np.deg2rad(angle)
            shifted = np.roll(field, (int(round(v * i * np.cos(a))), int(round(v * i * np.sin(a)))),
                              axis=(0, 1))
            layer = render_streaks(shifted, length, width, angle, bright)
            streaks = np.maximum(streaks, layer[margin:margin + h, margin:margin + w])
        clean.append(bg)
        rainy.append(compose(bg, streaks, p, t_map, tint))
    return rainy, clean


def heavier(p: RainParams, factor: float) -> RainParams:
    """The same condition with density and brightness scaled (for sweeps)."""
    return replace(p, density=p.density * factor, brightness=min(p.brightness * factor, 1.0))
