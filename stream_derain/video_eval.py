"""Video evaluation (v4): the product's frame path over dev video, and what it scores.

:func:`derain_clip` runs a list of frames through the same stages that files use
(:func:`~stream_derain.stages.frame_stages`: the temporal window, the backend, the
smoother), in memory. These kinds of clip are scored (:mod:`~stream_derain.devvideo`):

- **rainy, with ground truth** (synthetic rain, light streak-only synthetic rain, and
  real rain mined from held-out real clips over the same clean clips): PSNR/SSIM-Y,
  brightness bias (grey levels) and detail ratio against the clean clip (per frame,
  averaged), and the warping error E_warp (flow on the clean clip);
- **rain-free**: the same against the input itself (do no harm);
- **real rain, no ground truth**: two no-reference measures (:func:`transients`):

  *leftover rain* = the share of pixels whose luma exceeds the median of the same
  clip's four nearest frames (two each side, each warped onto the frame by DIS
  optical flow computed on that clip) by more than ``RAIN_LEVELS`` grey levels,
  averaged over the frames that have two neighbours each side. Rain is bright for
  about one frame and moves on, so it stands out of the aligned median; a static
  or moving scene does not (up to flow failures and occlusions, which are the same
  for every method compared on one clip). Reported against the input's share:
  *rain removed* = 1 - output share / input share.

  *background detail* = Laplacian energy (3x3, luma) of the output over the input's,
  on the input's pixels where no transient brightening above 2 levels lies within
  4 pixels (the background rain does not touch). Below 1: the method smeared the
  scene; a derainer should keep it at 0.95 or more.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import devvideo
from .align import warp
from .backends.base import Backend
from .flicker import flow_pairs, laplacian_energy, luma_f32, warping_error
from .io import images
from .io.video import FrameItem
from .metrics import image_scores
from .pipeline import Pipeline, Stage
from .stages import DecodeStage, frame_stages

log = logging.getLogger(__name__)
Derain = Callable[[list[np.ndarray]], list[np.ndarray]]  # a clip's frames -> derained frames
PSNR_CAP = 100.0
RAIN_LEVELS = 6.0
DRY_LEVELS = 2.0


def derain_clip(backend: Backend, frames: Sequence[np.ndarray], *, smooth: bool = False,
                mode: str = "centred") -> list[np.ndarray]:
    """HxWx3 uint8 RGB frames -> the derained frames, through the file path's stages."""
    items = [FrameItem(i, i, Fraction(1, 25), f.copy(), duration=1) for i, f in enumerate(frames)]
    p = Pipeline()
    decoded: queue.Queue = queue.Queue(8)
    p.add(DecodeStage(p.stop, p.source_stop, decoded, lambda: iter(items)))
    out_q, _ = frame_stages(p, decoded, backend, smooth=smooth, mode=mode)
    out: list[np.ndarray] = []
    p.add(_Collect(p, out_q, out))
    p.run(lambda: len(out))
    return out


class _Collect(Stage):
    """Sink stage that keeps the frames' images."""

    def __init__(self, p: Pipeline, inq: queue.Queue, out: list[np.ndarray]) -> None:
        super().__init__("collect", p.stop, inq, None)
        self.out = out

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem):
            self.out.append(item.image)
        return []


def transients(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """For frames t = 2..N-3, luma minus the median of frames t-2, t-1, t+1, t+2 warped
    onto t (DIS medium on full-resolution luma): HxW float32 in grey levels."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [luma_f32(f) for f in frames]
    u8 = [g.astype(np.uint8) for g in grey]
    out = []
    for t in range(2, len(frames) - 2):
        warped = [warp(grey[t + d], dis.calc(u8[t], u8[t + d], None)) for d in (-2, -1, 1, 2)]
        out.append(grey[t] - np.median(np.stack(warped), axis=0))
    return out


def real_scores(output: Sequence[np.ndarray], source: Sequence[np.ndarray]) -> dict[str, float]:
    """Leftover rain (output and input), rain removed, background detail: see the module."""
    t_in, t_out = transients(source), transients(output)
    share_in = float(np.mean([(t > RAIN_LEVELS).mean() for t in t_in]))
    share_out = float(np.mean([(t > RAIN_LEVELS).mean() for t in t_out]))
    kernel = np.ones((9, 9), np.uint8)
    dry = [cv2.erode((t <= DRY_LEVELS).astype(np.uint8), kernel).astype(bool) for t in t_in]
    inner_in, inner_out = list(source[2:-2]), list(output[2:-2])
    detail = laplacian_energy(inner_out, dry) / max(laplacian_energy(inner_in, dry), 1e-12)
    return {"rain_share_input": share_in, "rain_share_output": share_out,
            "rain_removed": 1.0 - share_out / max(share_in, 1e-12), "background_detail": detail,
            "e_warp": warping_error(output), "e_warp_input": warping_error(source)}


def reference_scores(output: Sequence[np.ndarray], clean: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean per-frame PSNR/SSIM-Y, bias and detail against ``clean``; E_warp (flow on clean)."""
    rows = [image_scores(o, c) for o, c in zip(output, clean)]
    for r in rows:  # identical frames: capped, as the manifest's dev scores are
        r["psnr_y"] = min(r["psnr_y"], PSNR_CAP)
    scores = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_y", "ssim_y", "bias", "detail")}
    scores["e_warp"] = warping_error(output, flow_pairs(clean))
    return scores


def read_pairs(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A dev video folder's (rainy frames, clean frames) from its rain/ and clean/ PNGs."""
    names = sorted(p.name for p in (folder / "rain").iterdir())
    return ([images.read_rgb(folder / "rain" / n) for n in names],
            [images.read_rgb(folder / "clean" / n) for n in names])


def _means(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    values = list(rows.values())
    return {k: float(np.mean([r[k] for r in values])) for k in values[0]}


def real_means(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """The mean of :func:`real_scores` rows, with ``rain_removed`` taken from the mean
    shares (a clip with little rain would dominate a mean of ratios)."""
    q = _means(rows)
    q["rain_removed"] = 1.0 - q["rain_share_output"] / max(q["rain_share_input"], 1e-12)
    return q


def evaluate_dev_video(derain_fn: Derain, root: Path = Path("runs/devvideo"), name: str = "model",
                       real: bool = True) -> dict[str, Any]:
    """Scores of ``derain_fn`` on every dev clip (rendered under ``root`` when missing):
    ``rain``, ``light``, ``clean`` and ``realrain`` (per clip and ``mean``:
    :func:`reference_scores`) and ``real`` (:func:`real_scores`)."""
    devvideo.render_all(root)
    result: dict[str, Any] = {"model": name, "rain": {}, "light": {}, "clean": {}, "realrain": {}, "real": {}}
    for clip in devvideo.DEV_CLIPS:
        rainy, clean = read_pairs(root / f"{clip.name}_rain")
        result["rain"][clip.name] = reference_scores(derain_fn(rainy), clean)
        result["clean"][clip.name] = reference_scores(derain_fn(clean), clean)
        rainy, clean = read_pairs(devvideo.render_light(clip, root))
        result["light"][clip.name] = reference_scores(derain_fn(rainy), clean)
        log.info("%s: %s rain %.2f dB, clean %.2f dB", name, clip.name, result["rain"][clip.name]["psnr_y"],
                 result["clean"][clip.name]["psnr_y"])
        folder = devvideo.render_real_rain(clip, root) if real else None
        if folder is not None:
            rainy, clean = read_pairs(folder)
            result["realrain"][clip.name] = reference_scores(derain_fn(rainy), clean)
    for src in devvideo.REAL_CLIPS if real else ():
        frames = devvideo.real_dev_frames(src)
        result["real"][devvideo.real_name(src)] = real_scores(derain_fn(frames), frames)
    for kind in ("rain", "light", "clean", "realrain"):
        if result[kind]:
            result[kind]["mean"] = _means(result[kind])
    if result["real"]:
        result["real"]["mean"] = real_means(result["real"])
    return result


def summary_line(r: dict[str, Any]) -> str:
    """One line of :func:`evaluate_dev_video`'s means."""
    a, c = r["rain"]["mean"], r["clean"]["mean"]
    text = (f"{r['model']}: rainy {a['psnr_y']:.2f} dB / {a['ssim_y']:.4f}, bias {a['bias']:+.2f}, detail "
            f"{a['detail']:.3f}, E_warp {1e3 * a['e_warp']:.2f}e-3 | rain-free {c['psnr_y']:.2f} dB, bias "
            f"{c['bias']:+.2f}")
    if r.get("light"):
        m = r["light"]["mean"]
        text += f" | light rain: {m['psnr_y']:.2f} dB, bias {m['bias']:+.2f}, detail {m['detail']:.3f}"
    if r.get("realrain"):
        m = r["realrain"]["mean"]
        text += (f" | real rain over clean: {m['psnr_y']:.2f} dB, bias {m['bias']:+.2f}, "
                 f"detail {m['detail']:.3f}")
    if r["real"]:
        q = r["real"]["mean"]
        text += (f" | real: rain left {q['rain_share_output']:.4f} (removed {100 * q['rain_removed']:.0f}%), "
                 f"background detail {q['background_detail']:.3f}")
    return text
