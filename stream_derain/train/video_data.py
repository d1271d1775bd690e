"""Training windows for the multi-frame student (v4): rain that moves over real motion.

A window is K frames in slot order (slot 0 the target; :data:`~..model.temporal.OFFSETS`)
and the clean target frame. Each is drawn as:

1. **frames with motion**: either K frames of a clean training clip (real camera and
   object motion: DAVIS-extra, Cityscapes and the Udacity highway; the dev clips of
   :mod:`~stream_derain.devvideo` are never used) at a temporal stride of 1-3 (the
   clip subsampled: 8 to 25 fps from a 25 fps source), or a still photo under a
   synthetic camera path (:func:`still_window`: a forward zoom as from a car, a pan,
   and in half of them an object crossing the view);
2. the mode, centred or causal (half each: one set of weights serves both), which
   sets the frames' offsets;
3. one random crop (size and place shared by the K frames), flipped or not;
4. **rain** (:func:`~stream_derain.synth.rain_over_frames`) falling coherently over
   the K frames at their times, scaled by a random fall speed (x0.6-1.6): at a low
   frame rate a drop moves far between frames, at a high one it overlaps itself;
   the condition is drawn as for single frames (:func:`~stream_derain.synth.rain_pair`'s
   recipe: heavy, faint and dense shares). A share of windows stays rain-free
   (target = input: do no harm on real motion), and a share is JPEG-compressed after
   the rain (every frame and the target with one quality);
5. with ``align = "flow"`` (the explicit-alignment ablation) each neighbour is warped
   onto the target by DIS optical flow computed on the rainy frames, as inference
   would have to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import synth
from ..devvideo import read_source
from ..flicker import warp
from ..model.temporal import OFFSETS

log = logging.getLogger(__name__)
Window = tuple[np.ndarray, np.ndarray]  # (HxWx3K float32 slots, HxWx3 float32 target)


@dataclass(frozen=True)
class WindowRecipe:
    frames: int = 5
    crop: int = 128
    causal_share: float = 0.5
    still_share: float = 0.4  # windows from stills under a synthetic camera path
    rain_free_share: float = 0.2
    compress_share: float = 0.3
    heavy_share: float = 0.35
    faint_share: float = 0.35
    dense_share: float = 0.3
    max_stride: int = 3
    align: str = "none"  # "none" (implicit) or "flow" (explicit, DIS)


def load_clips(sources: Sequence[str], data_root: Path, max_side: int = 640) -> list[list[np.ndarray]]:
    """Training clips as lists of HxWx3 uint8 frames; ``source`` may end in ``[a:b]`` to
    take a frame range (e.g. ``clean_video/udacity/solidWhiteRight.mp4[0:170]``)."""
    from ..devvideo import fit

    clips = []
    for spec in sources:
        path, _, rng = spec.partition("[")
        frames = read_source(data_root / path)
        if rng:
            a, b = (int(v) if v else None for v in rng.rstrip("]").split(":"))
            frames = frames[a:b]
        clips.append([fit(f, max_side) for f in frames])
        log.info("video clip %s: %d frames", spec, len(clips[-1]))
    return clips


def _crop_box(h: int, w: int, size: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """(y, x, side) of a square crop of side in [size, min(h, w) * 0.8], resized to size later."""
    side = int(rng.uniform(size, max(size, min(h, w) * 0.8)))
    return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side


def clip_window(clip: list[np.ndarray], offsets: Sequence[int], size: int, max_stride: int,
                rng: np.random.Generator) -> tuple[list[np.ndarray], float]:
    """K crops (slot order) of a clip and the stride used."""
    span = max(offsets) - min(offsets)
    stride = int(rng.integers(1, max(1, min(max_stride, (len(clip) - 1) // max(span, 1))) + 1))
    t = int(rng.integers(-min(offsets) * stride, len(clip) - max(offsets) * stride))
    h, w = clip[0].shape[:2]
    y, x, side = _crop_box(h, w, size, rng)
    flip = rng.uniform() < 0.5
    out = []
    for o in offsets:
        c = clip[t + o * stride][y:y + side, x:x + side]
        c = cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) if side != size else c
        out.append(np.ascontiguousarray(c[:, ::-1] if flip else c).astype(np.float32) / 255.0)
    return out, float(stride)


def still_window(src: np.ndarray, sprite: np.ndarray | None, offsets: Sequence[int], size: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """K frames (slot order) of a still under a camera path: per frame a zoom about a
    focal point (forward motion, up to 4% a frame) and a pan (up to 6 px a frame), and
    ``sprite`` (an elliptical patch of another photo) crossing the view when given."""
    h, w = src.shape[:2]
    zoom = float(np.exp(rng.uniform(-0.005, 0.04))) if rng.uniform() < 0.6 else 1.0
    pan = rng.normal(0, 3.0, 2)
    focus = (float(rng.uniform(0.3, 0.7) * size), float(rng.uniform(0.3, 0.6) * size))
    y, x, side = _crop_box(h, w, size, rng)
    base = cv2.resize(src[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    mask = None
    if sprite is not None:
        r = int(rng.integers(size // 8, size // 3))
        patch = cv2.resize(sprite, (2 * r, 2 * r), interpolation=cv2.INTER_AREA)
        mask = np.zeros((2 * r, 2 * r), np.float32)
        cv2.ellipse(mask, (r, r), (r - 1, int(r * rng.uniform(0.5, 0.95)) - 1), 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.0)[..., None]
        start, vel = rng.uniform(0, size - 2 * r, 2), rng.normal(0, 5.0, 2)
    out = []
    for o in offsets:
        s = zoom ** o
        m = np.array([[s, 0, (1 - s) * focus[0] + pan[0] * o], [0, s, (1 - s) * focus[1] + pan[1] * o]],
                     np.float32)
        f = cv2.warpAffine(base, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if mask is not None:
            py, px = (np.clip(start + vel * o, 0, size - patch.shape[0])).astype(int)
            region = f[py:py + patch.shape[0], px:px + patch.shape[1]]
            region[:] = region * (1 - mask) + patch * mask
        out.append(f)
    return out


def align_to_target(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Warp every neighbour (slots 1..) onto the target (slot 0) by DIS flow (fast preset)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    grey = [cv2.cvtColor((f * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in frames]
    return [frames[0]] + [warp(f, dis.calc(grey[0], g, None)) for f, g in zip(frames[1:], grey[1:])]


def _rain(frames: list[np.ndarray], times: np.ndarray, recipe: WindowRecipe, bank: synth.StreakBank | None,
          rng: np.random.Generator) -> list[np.ndarray]:
    heavy = rng.uniform(0.5, 1.0) if rng.uniform() < recipe.heavy_share else rng.uniform(0.0, 0.5)
    p = synth.sample_params(rng, heavy, bank is not None, recipe.dense_share)
    if rng.uniform() < recipe.faint_share:
        p = synth.faint(p, float(rng.uniform(0.25, 0.6)))
    order = np.argsort(times)  # render in time order, hand back in slot order
    rendered = synth.rain_over_frames([frames[i] for i in order], rng, p, bank, times[order])
    out: list[np.ndarray] = [np.empty(0)] * len(frames)
    for k, i in enumerate(order):
        out[i] = rendered[k]
    return out


def windows(clips: list[list[np.ndarray]], stills: list[np.ndarray], recipe: WindowRecipe,
            bank: synth.StreakBank | None, rng: np.random.Generator) -> Iterator[Window]:
    """Endless (slots HxWx3K, target HxWx3) float32 windows (see the module docstring)."""
    modes = OFFSETS[recipe.frames]
    while True:
        offsets = modes["causal" if rng.uniform() < recipe.causal_share else "centred"]
        if not clips or rng.uniform() < recipe.still_share:
            sprite = stills[int(rng.integers(len(stills)))] if rng.uniform() < 0.5 else None
            clean = still_window(stills[int(rng.integers(len(stills)))], sprite, offsets, recipe.crop, rng)
            stride = 1.0
        else:
            clean, stride = clip_window(clips[int(rng.integers(len(clips)))], offsets, recipe.crop,
                                        recipe.max_stride, rng)
        rainy = clean
        if rng.uniform() >= recipe.rain_free_share:
            times = np.asarray(offsets, np.float32) * stride * float(rng.uniform(0.6, 1.6))
            rainy = _rain(clean, times, recipe, bank, rng)
        target = clean[0]
        if rng.uniform() < recipe.compress_share:
            q = int(rng.integers(35, 91))
            rainy, target = [synth.jpeg(f, q) for f in rainy], synth.jpeg(target, q)
        if recipe.align == "flow":
            rainy = align_to_target(rainy)
        yield np.concatenate(rainy, axis=2), target


def batch_windows(stream: Iterator[Window], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs Nx3KxHxW, targets Nx3xHxW) float32."""
    xs, ys = zip(*(next(stream) for _ in range(n)))
    return (np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2)),
            np.ascontiguousarray(np.stack(ys).transpose(0, 3, 1, 2)))
