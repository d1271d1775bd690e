"""Rain mined from real rainy video, to composite over clean training clips.

Rain is bright for about one frame and moves on; the scene stays. So a real rainy
frame minus the median of its four nearest frames (two each side, each warped onto
it by DIS optical flow) is, where that difference is clearly positive, the frame's
rain: real streak shapes, widths, brightness, blur and density, which no synthesiser
here draws. This is the temporal-statistics idea SPA-Data (Wang et al. 2019) used to
build clean frames for real rainy video, used the other way round: keep the rain.

:func:`mine_layers` keeps, per colour, ``max(0, frame - median)`` where the luma is
above the median by more than :data:`MIN_LEVELS` grey levels, and drops pixels where
the aligned neighbours disagree: the darkest three spread over more than
:data:`MAX_SPREAD` levels (the flow failed there, or leaves flutter: what stands out
is the scene's motion, not rain; one neighbour may carry rain of its own). The
layers of consecutive frames go over the K frames of a clean window
(:func:`mined_window`), so the rain keeps its own temporal behaviour (each frame's
streaks where they were) while the scene is the clean clip's, with its ground truth.
Training mines the trainable part of each real clip
(:func:`~stream_derain.train.video_data.load_mined_rain`), the dev video the held-out
part (:func:`~stream_derain.devvideo.render_real_rain`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..align import align_window

MIN_LEVELS = 6.0  # luma above the aligned median that counts as rain (grey levels: the eval's)
MAX_SPREAD = 8.0  # three aligned neighbours further apart than this (luma levels): flow failed
ALIGN = "flow-medium"
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def mine_layers(frames: Sequence[np.ndarray], align: str = ALIGN) -> list[np.ndarray]:
    """HxWx3 uint8 frames of one real clip -> the rain layer (HxWx3 float32 in [0, 1])
    of every frame with two neighbours each side (frames 2 .. n-3), in order."""
    layers = []
    for t in range(2, len(frames) - 2):
        slots = [frames[t], *(frames[t + d] for d in (-2, -1, 1, 2))]
        aligned = np.stack(align_window(slots, align)[1:]).astype(np.float32)  # 4xHxWx3
        median = np.median(aligned, axis=0)
        cur = frames[t].astype(np.float32)
        luma = np.sort(aligned @ _LUMA, axis=0)
        spread = luma[2] - luma[0]  # the neighbours agree but for one (rain may be on one)
        rain = ((cur - median) @ _LUMA > MIN_LEVELS) & (spread <= MAX_SPREAD)
        layers.append(np.maximum(cur - median, 0.0) * rain[..., None] / 255.0)
    return layers


def mined_window(layers: Sequence[np.ndarray], offsets: Sequence[int], size: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """K rain layers (slot order) of consecutive real frames, one random crop of ``size``
    (the same place in each, flipped or not) and one random gain. ``layers`` must hold
    more than the window's span (the training loader keeps such clips only)."""
    t = int(rng.integers(-min(offsets), len(layers) - max(offsets)))
    h, w = layers[0].shape[:2]
    side = min(size, h, w)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    flip = rng.uniform() < 0.5
    gain = np.float32(rng.uniform(0.7, 1.5))
    out = []
    for o in offsets:
        la = layers[t + o][y:y + side, x:x + side]
        la = cv2.resize(la, (size, size), interpolation=cv2.INTER_LINEAR) if side != size else la
        out.append(np.ascontiguousarray(la[:, ::-1] if flip else la) * gain)
    return out


def composite(clean: Sequence[np.ndarray], layers: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Rain added to each frame (float32 in [0, 1]), clipped at white."""
    return [np.minimum(c + la, 1.0) for c, la in zip(clean, layers)]
