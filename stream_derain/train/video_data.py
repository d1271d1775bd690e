"""Training windows for the multi-frame student (v4): rain that moves over real motion.

A window is K frames in slot order (slot 0 the target; :data:`~..model.temporal.OFFSETS`)
and the clean target frame. Each is drawn as:

1. **frames with motion**: either K frames of a clean training clip (real camera and
   object motion: DAVIS-extra, Cityscapes and the Udacity highway; the dev clips of
   :mod:`~stream_derain.devvideo` are never used) at a temporal stride of 1-3 (the
   clip subsampled: 8 to 25 fps from a 25 fps source), or a still photo under a
   synthetic camera path (:func:`still_window`: a forward zoom as from a car, a pan,
   or for a ``static_share`` of them a fixed camera with sensor noise; in half of them an
   object crossing the view);
2. the mode, centred or causal (half each: one set of weights serves both), which
   sets the frames' offsets;
3. one random crop (size and place shared by the K frames), flipped or not;
4. **rain** (:func:`~stream_derain.synth.rain_over_frames`) falling coherently over
   the K frames at their times, scaled by a random fall speed (``fall_speed``): at a low
   frame rate a drop moves far between frames, at a high one it overlaps itself;
   the condition is drawn as for single frames (:func:`~stream_derain.synth.rain_pair`'s
   recipe: heavy, faint and dense shares), or for a share of them (``mined_share``)
   rain mined from real rainy clips (:mod:`~stream_derain.synth.mined`: each frame's own real
   streaks, consecutive frames over the K slots). A share of windows stays rain-free
   (target = input: do no harm on real motion), and a share is JPEG-compressed after
   the rain (every frame and the target with one quality);
5. with ``align = "flow"`` (explicit alignment) each neighbour is warped onto the
   target by DIS optical flow computed on the rainy frames
   (:func:`~stream_derain.align.align_window`, the function inference calls).

**Real rain through a teacher** (``teacher_share`` > 0): a share of windows are K
consecutive frames of a *real* rainy clip whose target frame has a cached SPANet
output (``scripts/teacher_cache.py``, :mod:`stream_derain.model.spanet`); that output
is the target. Only the first :data:`~stream_derain.devvideo.REAL_TRAIN_SHARE` of
each clip is used (window slots past it repeat the last frame before it): the rest
is real dev video.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import synth
from ..align import align_window
from ..devvideo import fit, read_source
from ..model.temporal import OFFSETS
from ..synth.mined import composite, mine_layers, mined_window

log = logging.getLogger(__name__)
MIN_LAYERS = 8  # a real clip must give more mined layers than any window spans
Window = tuple[np.ndarray, np.ndarray]  # (HxWx3K float32 slots, HxWx3 float32 target)


@dataclass(frozen=True)
class WindowRecipe:
    frames: int = 5
    crop: int = 128
    causal_share: float = 0.5
    still_share: float = 0.4  # windows from stills under a synthetic camera path
    # of those, windows from a fixed camera (no zoom, no pan; frames differ by sensor
    # noise, and in half of them an object crosses): a webcam's or a parked car's view
    static_share: float = 0.0
    rain_free_share: float = 0.2
    compress_share: float = 0.3
    heavy_share: float = 0.35
    faint_share: float = 0.35
    dense_share: float = 0.3
    max_stride: int = 3
    align: str = "none"  # "none" (implicit) or a flow mode of align.FLOWS (explicit, DIS)
    teacher_share: float = 0.0  # windows of real rain with the teacher's output as target
    mined_share: float = 0.0  # rainy windows whose rain is mined from real clips (synth.mined)
    # rain's fall per frame interval, in multiples of the renderer's base speed (0.8 of a
    # streak's length): at most ~1 the streak overlaps itself in the next frame; a camera
    # whose exposure is shorter than its frame interval never does (1.25-3.75)
    fall_speed: tuple[float, float] = (0.6, 1.6)


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
                 rng: np.random.Generator, fixed: bool = False) -> list[np.ndarray]:
    """K frames (slot order) of a still under a camera path: per frame a zoom about a
    focal point (forward motion, up to 4% a frame) and a pan (up to 6 px a frame), and
    ``sprite`` (an elliptical patch of another photo) crossing the view when given.
    ``fixed``: the camera does not move, and each frame gets its own sensor noise
    (Gaussian, sigma 0.3-2 grey levels)."""
    h, w = src.shape[:2]
    zoom = float(np.exp(rng.uniform(-0.005, 0.04))) if rng.uniform() < 0.6 and not fixed else 1.0
    pan = np.zeros(2) if fixed else rng.normal(0, 3.0, 2)
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
    if fixed:
        sigma = float(rng.uniform(0.3, 2.0)) / 255.0
        out = [np.clip(f + rng.normal(0, sigma, f.shape).astype(np.float32), 0, 1) for f in out]
    return out


def _rain(frames: list[np.ndarray], times: np.ndarray, recipe: WindowRecipe, bank: synth.StreakBank | None,
          rng: np.random.Generator) -> list[np.ndarray]:
    _, p = synth.draw_condition(rng, recipe.heavy_share, recipe.faint_share, bank is not None,
                                recipe.dense_share)
    order = np.argsort(times)  # render in time order, hand back in slot order
    rendered = synth.rain_over_frames([frames[i] for i in order], rng, p, bank, times[order])
    out: list[np.ndarray] = [np.empty(0)] * len(frames)
    for k, i in enumerate(order):
        out[i] = rendered[k]
    return out


def windows(clips: list[list[np.ndarray]], stills: list[np.ndarray], recipe: WindowRecipe,
            bank: synth.StreakBank | None, rng: np.random.Generator,
            teacher: Sequence[TeacherClip] = (), mined: Sequence[list[np.ndarray]] = ()) -> Iterator[Window]:
    """Endless (slots HxWx3K, target HxWx3) float32 windows (see the module docstring)."""
    modes = OFFSETS[recipe.frames]
    while True:
        offsets = modes["causal" if rng.uniform() < recipe.causal_share else "centred"]
        if teacher and recipe.teacher_share > 0 and rng.uniform() < recipe.teacher_share:
            x, y = teacher_window(teacher[int(rng.integers(len(teacher)))], offsets, recipe.crop, rng)
            if recipe.align != "none":
                x = np.concatenate(align_window(np.split(x, len(offsets), axis=2), recipe.align,
                                                offsets=offsets), axis=2)
            yield x, y
            continue
        if not clips or rng.uniform() < recipe.still_share:
            sprite = stills[int(rng.integers(len(stills)))] if rng.uniform() < 0.5 else None
            clean = still_window(stills[int(rng.integers(len(stills)))], sprite, offsets, recipe.crop, rng,
                                 fixed=recipe.static_share > 0 and rng.uniform() < recipe.static_share)
            stride = 1.0
        else:
            clean, stride = clip_window(clips[int(rng.integers(len(clips)))], offsets, recipe.crop,
                                        recipe.max_stride, rng)
        rainy = clean
        if rng.uniform() >= recipe.rain_free_share:
            if mined and rng.uniform() < recipe.mined_share:
                layers = mined_window(mined[int(rng.integers(len(mined)))], offsets, recipe.crop, rng)
                rainy = composite(clean, layers)
            else:
                times = np.asarray(offsets, np.float32) * stride * float(rng.uniform(*recipe.fall_speed))
                rainy = _rain(clean, times, recipe, bank, rng)
        target = clean[0]
        if rng.uniform() < recipe.compress_share:
            q = int(rng.integers(35, 91))
            rainy, target = [synth.jpeg(f, q) for f in rainy], synth.jpeg(target, q)
        if recipe.align != "none":
            rainy = align_window(rainy, recipe.align, offsets=offsets)
        yield np.concatenate(rainy, axis=2), target


@dataclass(frozen=True)
class TeacherClip:
    """The trainable part of a real rainy clip (HxWx3 uint8 frames, at the teacher cache's
    size) and the teacher's outputs for some of its frames (index -> HxWx3 uint8)."""

    frames: list[np.ndarray]
    targets: dict[int, np.ndarray]


def load_teacher_clips(cache: Path, sources: dict[str, str], data_root: Path,
                       train_share: float) -> list[TeacherClip]:
    """Real clips with cached teacher outputs: ``sources`` maps a cache folder name
    (``ra1``, ``pexels-262``) to its clip under the data root; the cache holds
    ``<stem>.png`` (the teacher's output) for some frames (stems: a folder's file stems,
    or a video's 0-based frame index)."""
    from ..io import images

    clips = []
    for name, rel in sources.items():
        folder = cache / name
        if not folder.is_dir():
            log.warning("no teacher outputs for %s in %s", name, cache)
            continue
        path = data_root / rel
        frames = read_source(path)
        stems = ([p.stem for p in images.list_images(path)] if path.is_dir()
                 else [f"{i:05d}" for i in range(len(frames))])
        limit = int(len(stems) * train_share)
        frames = frames[:limit]
        targets = {i: images.read_rgb(folder / f"{s}.png") for i, s in enumerate(stems[:limit])
                   if (folder / f"{s}.png").is_file()}
        if not targets:
            continue
        h, w = next(iter(targets.values())).shape[:2]
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]
        clips.append(TeacherClip(frames, targets))
        log.info("teacher targets %s: %d of %d trainable frames", name, len(targets), limit)
    return clips


def trainable_frames(rel: str, data_root: Path, train_share: float) -> list[np.ndarray]:
    """The first ``train_share`` of a real clip's frames (the rest is dev video), box-resized
    as the dev video is (:func:`~stream_derain.devvideo.fit`)."""
    frames = read_source(data_root / rel)
    return [fit(f) for f in frames[:int(len(frames) * train_share)]]


def load_real_clips(sources: dict[str, str], data_root: Path, train_share: float) -> list[TeacherClip]:
    """Real clips without teacher outputs (the trainable part, at the dev video's size):
    each frame is its own target, for a loss that never reads it (head distillation,
    whose target is another head's logits on the same window)."""
    clips = []
    for name, rel in sources.items():
        frames = trainable_frames(rel, data_root, train_share)
        clips.append(TeacherClip(frames, dict(enumerate(frames))))
        log.info("real windows %s: %d trainable frames", name, len(frames))
    return clips


def load_mined_rain(sources: Sequence[str], data_root: Path, train_share: float) -> list[list[np.ndarray]]:
    """The mined layers of each real clip's trainable part, one list per clip."""
    clips = []
    for rel in sources:
        layers = mine_layers(trainable_frames(rel, data_root, train_share))
        if len(layers) > MIN_LAYERS:
            clips.append(layers)
            cover = np.mean([(la.max(axis=2) > 0).mean() for la in layers])
            log.info("mined rain %s: %d layers, %.1f%% of the pixels", rel, len(layers), 100 * cover)
    return clips


def teacher_window(clip: TeacherClip, offsets: Sequence[int], size: int, rng: np.random.Generator) -> Window:
    """K real frames (slots clamped to the trainable part) and the teacher's target."""
    t = list(clip.targets)[int(rng.integers(len(clip.targets)))]
    n = len(clip.frames)
    h, w = clip.frames[0].shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    flip = rng.uniform() < 0.5

    def crop(img: np.ndarray) -> np.ndarray:
        c = img[y:y + size, x:x + size]
        return np.ascontiguousarray(c[:, ::-1] if flip else c).astype(np.float32) / 255.0

    slots = [crop(clip.frames[min(max(t + o, 0), n - 1)]) for o in offsets]
    return np.concatenate(slots, axis=2), crop(clip.targets[t])


def batch_windows(stream: Iterator[Window], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs Nx3KxHxW, targets Nx3xHxW) float32."""
    xs, ys = zip(*(next(stream) for _ in range(n)))
    return (np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2)),
            np.ascontiguousarray(np.stack(ys).transpose(0, 3, 1, 2)))
