"""Temporal flicker of a video: the warping error E_warp of Lai et al. (ECCV 2018).

For consecutive frames ``t-1, t`` of an output video O::

    E_warp(t) = sum_x M_t(x) * sum_c (O_t(x, c) - warp(O_{t-1}, F_b)(x, c))^2 / sum_x M_t(x)

on RGB in [0, 1] (squared differences summed over the 3 channels, averaged over
non-occluded pixels, as in the authors' code), averaged over t = 1..N-1. ``F_b`` is the
optical flow from frame t to frame t-1 and ``M_t`` the non-occlusion mask from
forward-backward consistency: x is occluded where

    |F_b(x) + F_f(x + F_b(x))|^2 > 0.01 (|F_b(x)|^2 + |F_f(x + F_b(x))|^2) + 0.5

(``F_f``: flow from t-1 to t). Flow is computed on the clean reference frames when
given, else on the rainy input (source) frames, else on the output itself, with
OpenCV's DIS optical flow (``PRESET_MEDIUM``) on full-resolution luma. Lai et al. used
FlowNet2; DIS numbers are comparable with each other, not with published tables.

:func:`evaluate_video` also gives per-frame PSNR/SSIM against a reference video
(:func:`stream_derain.metrics.image_scores`: Y channel and RGB).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .align import warp
from .errors import InputError
from .io.images import list_images
from .metrics import image_scores

log = logging.getLogger(__name__)

# a flow pair: (F_b HxWx2 float32 from t to t-1, non-occlusion mask HxW float32 in {0, 1})
FlowPair = tuple[np.ndarray, np.ndarray]


MIN_SIDE = 12  # DIS optical flow fails below 12 px a side; SSIM's 11x11 window needs 11


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """HxWx3 uint8 RGB frames of a video file (PyAV) or of a folder of images
    (:func:`stream_derain.io.images.list_images`: sorted, the images it recognises).
    Frames of another size than the first (a stream that changes size) are scaled to
    it, as ``derain`` does; frames under :data:`MIN_SIDE` px a side are an InputError."""
    frames = _read_images(path, limit) if path.is_dir() else _read_video(path, limit)
    h, w = frames[0].shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{path}: frames of {w}x{h} are too small to score (the optical flow and SSIM "
                         f"need {MIN_SIDE} px a side)")
    return frames


def _read_images(path: Path, limit: int | None) -> list[np.ndarray]:
    files = list_images(path)[:limit]
    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files]
    if not frames or any(f is None for f in frames):
        raise InputError(f"no readable image frames in {path}")
    size = frames[0].shape[1::-1]
    if any(f.shape[1::-1] != size for f in frames):
        log.warning("%s: images of several sizes: scaled to the first one's, %dx%d", path, *size)
    return [cv2.cvtColor(f if f.shape[1::-1] == size else cv2.resize(f, size, interpolation=cv2.INTER_AREA),
                         cv2.COLOR_BGR2RGB) for f in frames]


def _read_video(path: Path, limit: int | None) -> list[np.ndarray]:
    import av

    from .io.paths import av_name
    from .io.video import TAG_ERRORS

    frames: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    seen: set[tuple[int, int]] = set()
    try:
        with av.open(av_name(path), metadata_errors=TAG_ERRORS) as container:
            for frame in container.decode(video=0):
                size = size or (frame.width, frame.height)
                if (frame.width, frame.height) not in seen | {size}:
                    seen.add((frame.width, frame.height))
                    log.warning("%s: the frame size changes to %dx%d: scaled to the first frames' %dx%d",
                                path, frame.width, frame.height, *size)
                frames.append(frame.to_ndarray(format="rgb24", width=size[0], height=size[1]))
                if limit is not None and len(frames) >= limit:
                    break
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"cannot read video {path}: {exc}") from None
    if not frames:
        raise InputError(f"no video frames in {path}")
    return frames


def _flow_engine() -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def non_occlusion(flow_b: np.ndarray, flow_f: np.ndarray) -> np.ndarray:
    """HxW float32 mask, 1 where ``flow_b`` (t -> t-1) and ``flow_f`` (t-1 -> t) agree
    (Lai et al.'s test) and the warp source lies inside the frame."""
    f_w = warp(flow_f, flow_b)
    mismatch = ((flow_b + f_w) ** 2).sum(axis=2)
    occluded = mismatch > 0.01 * ((flow_b ** 2).sum(axis=2) + (f_w ** 2).sum(axis=2)) + 0.5
    h, w = flow_b.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow_b[..., 0], gy + flow_b[..., 1]
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return (~occluded & inside).astype(np.float32)


def flow_pairs(frames: Sequence[np.ndarray]) -> list[FlowPair]:
    """(F_b, mask) for t = 1..N-1 from HxWx3 uint8 RGB frames (DIS medium, full res)."""
    dis = _flow_engine()
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    pairs = []
    for prev, cur in zip(gray[:-1], gray[1:]):
        flow_b = dis.calc(cur, prev, None)
        flow_f = dis.calc(prev, cur, None)
        pairs.append((flow_b, non_occlusion(flow_b, flow_f)))
    return pairs


def warping_error_frames(frames: Sequence[np.ndarray], pairs: Sequence[FlowPair]) -> list[float]:
    """E_warp(t) for t = 1..N-1 of HxWx3 uint8 RGB frames, given :func:`flow_pairs`."""
    if len(frames) - 1 != len(pairs):
        raise InputError(f"{len(frames)} frames but {len(pairs)} flow pairs")
    errors = []
    for t, (flow_b, mask) in enumerate(pairs, start=1):
        cur = frames[t].astype(np.float32) * np.float32(1 / 255)
        prev = warp(frames[t - 1].astype(np.float32) * np.float32(1 / 255), flow_b)
        n = float(mask.sum())
        sq = ((cur - prev) ** 2).sum(axis=2)
        errors.append(float((sq * mask).sum() / n) if n > 0 else float(sq.mean()))
    return errors


def warping_error(frames: Sequence[np.ndarray], pairs: Sequence[FlowPair] | None = None) -> float:
    """Mean E_warp of a sequence (flow on ``frames`` themselves when ``pairs`` is None)."""
    if len(frames) < 2:
        return 0.0
    errors = warping_error_frames(frames, pairs if pairs is not None else flow_pairs(frames))
    return float(np.mean(errors))


def luma_f32(frame: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW float32 BT.601 luma in [0, 255] (OpenCV's weights)."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)


def laplacian_energy(frames: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> float:
    """Detail of a clip: mean over frames of the mean squared 3x3 Laplacian of the luma
    (HxWx3 uint8 RGB frames, luma in [0, 255]; a 4-pixel border is left out), over the
    pixels where ``masks`` (HxW bool, optional) are set."""
    vals = []
    for i, f in enumerate(frames):
        lap = cv2.Laplacian(luma_f32(f), cv2.CV_32F, ksize=1)[4:-4, 4:-4].astype(np.float64) ** 2
        if masks is not None:
            lap = lap[masks[i][4:-4, 4:-4]]
        vals.append(float(lap.mean()) if lap.size else 0.0)
    return float(np.mean(vals))


def dry_masks(rainy: Sequence[np.ndarray], clean: Sequence[np.ndarray], margin: int = 4) -> list[np.ndarray]:
    """HxW bool masks of the pixels that no rain touches (rainy equals clean within 2 levels
    in every channel), shrunk by ``margin`` pixels: where detail means scene detail."""
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    out = []
    for r, c in zip(rainy, clean):
        dry = (cv2.absdiff(r, c).max(axis=2) <= 2).astype(np.uint8)
        out.append(cv2.erode(dry, kernel).astype(bool))
    return out


def laplacian_std(frames: Sequence[np.ndarray]) -> float:
    """Mean over frames of the standard deviation of the 3x3 Laplacian of the luma."""
    return float(np.mean([cv2.Laplacian(luma_f32(f), cv2.CV_32F, ksize=1)[4:-4, 4:-4].std() for f in frames]))


def quality_scores(frames: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> dict[str, float]:
    """Per-frame PSNR/SSIM (Y and RGB) against ``reference``, averaged over frames."""
    scores = [image_scores(o, r) for o, r in zip(frames, reference)]
    return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}


def _same_length(*clips: list[np.ndarray] | None) -> int:
    n = min(len(c) for c in clips if c is not None)
    if any(c is not None and len(c) != n for c in clips):
        log.warning("videos differ in length: using the first %d frames", n)
    return n


def evaluate_video(output: Path, reference: Path | None = None, source: Path | None = None) -> dict[str, Any]:
    """Flicker and quality of one output clip (video file or folder of frames).

    Returns ``frames``, ``flow_on`` ('reference', 'source' or 'output'), ``e_warp`` of the
    output, ``e_warp_source`` when a source is given, and ``psnr_y``, ``ssim_y``,
    ``psnr_rgb``, ``ssim_rgb`` (means over frames) when a reference is given."""
    out = read_frames(output)
    ref = read_frames(reference) if reference is not None else None
    src = read_frames(source) if source is not None else None
    n = _same_length(out, ref, src)
    out, ref, src = out[:n], ref[:n] if ref else None, src[:n] if src else None
    for name, clip in (("reference", ref), ("source", src)):
        if clip is not None and clip[0].shape != out[0].shape:
            raise InputError(f"{name} frames are {clip[0].shape}, output frames {out[0].shape}")
    flow_on, basis = (("reference", ref) if ref is not None
                      else ("source", src) if src is not None else ("output", out))
    pairs = flow_pairs(basis)
    result: dict[str, Any] = {"frames": n, "flow_on": flow_on, "e_warp": warping_error(out, pairs)}
    if src is not None:
        result["e_warp_source"] = warping_error(src, pairs)
    if ref is not None:
        result.update(quality_scores(out, ref))
    return result
