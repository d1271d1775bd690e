"""Evaluate the temporal smoother: flicker (E_warp) and PSNR with and without it.

For each clip: per-frame derain with ONNX Runtime, then the CPU temporal smoother, and
report E_warp (x1e3) of the rainy input, the per-frame output and the smoothed output,
PSNR (RGB, dB) of per-frame and smoothed output against the clean frames (synthetic
clips only), and ms/frame of inference vs the smoother. Synthetic clips are the folders
of ``scripts/make_video_bench.py`` (rainy.mp4 + clean.mp4; flow for E_warp on clean);
real clips are folders of frames without ground truth (flow on the rainy input).

    python scripts/eval_smoother.py --bench .data/video_bench \\
        --real ../shared/data/real_video/ra1 ../shared/data/real_video/rb2 \\
        [--model path/to/model.onnx] [--strength 0.7] [--tune photo_sigma=0.05] \\
        [--strip /tmp/strip.png] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_derain.backends import create_backend
from stream_derain.flicker import flow_pairs, read_frames, warping_error
from stream_derain.metrics import psnr
from stream_derain.models import ModelInfo, load_model_info, model_from_path
from stream_derain.smooth import TemporalSmoother

log = logging.getLogger("eval_smoother")


@dataclass
class Clip:
    """One clip in memory: HxWx3 uint8 RGB frame lists (``clean`` None for real clips)."""

    name: str
    rainy: list[np.ndarray]
    clean: list[np.ndarray] | None
    derained: list[np.ndarray] | None = None
    infer_ms: float = 0.0
    smooth_ms: float = 0.0
    pairs: list | None = None  # E_warp flow pairs, on clean when known else on rainy


def load_clips(bench: Path | None, real: list[Path], limit: int | None) -> list[Clip]:
    clips = []
    if bench is not None:
        for folder in sorted(p for p in bench.iterdir() if (p / "rainy.mp4").is_file()):
            clips.append(Clip(folder.name, read_frames(folder / "rainy.mp4", limit),
                              read_frames(folder / "clean.mp4", limit)))
    for folder in real:
        clips.append(Clip(folder.name, read_frames(folder, limit), None))
    return clips


def run_clip(clip: Clip, model: ModelInfo, threads: int, make: Callable[[], Any]) -> list[np.ndarray]:
    """Per-frame derain (batch of 1, as the live pipeline runs) then the smoother, frame by
    frame, timing both stages in the same loop (so both see the same machine load).
    Sets ``clip.derained``, ``clip.infer_ms``, ``clip.smooth_ms``; returns the smoothed frames."""
    smoother, smoothed, derained = make(), [], []
    t_inf, t_sm = [], []
    with create_backend("onnxruntime", model, threads=threads) as backend:
        backend.infer(clip.rainy[0][None])  # warm-up
        for frame in clip.rainy:
            t0 = time.perf_counter()
            d = backend.infer(frame[None])[0]
            t1 = time.perf_counter()
            smoothed.append(smoother(d, frame))
            t_inf.append(t1 - t0)
            t_sm.append(time.perf_counter() - t1)
            derained.append(d)
    clip.derained = derained
    clip.infer_ms, clip.smooth_ms = 1e3 * float(np.median(t_inf)), 1e3 * float(np.median(t_sm[1:] or t_sm))
    return smoothed


def smooth(clip: Clip, make: Callable[[], Any]) -> tuple[list[np.ndarray], float]:
    """Smoothed frames of the already derained clip and the median smoother ms/frame."""
    smoother, times, out = make(), [], []
    for d, r in zip(clip.derained, clip.rainy):
        t = time.perf_counter()
        out.append(smoother(d, r))
        times.append(time.perf_counter() - t)
    return out, 1e3 * float(np.median(times[1:] or times))


def mean_psnr(frames: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Mean over frames of the RGB PSNR (dB) of HxWx3 uint8 frames."""
    return float(np.mean([psnr(a, b) for a, b in zip(frames, reference)]))


def score(clip: Clip, smoothed: list[np.ndarray], smooth_ms: float) -> dict[str, Any]:
    if clip.pairs is None:
        clip.pairs = flow_pairs(clip.clean if clip.clean is not None else clip.rainy)
    row: dict[str, Any] = {
        "clip": clip.name, "frames": len(clip.rainy),
        "ewarp_input": 1e3 * warping_error(clip.rainy, clip.pairs),
        "ewarp_perframe": 1e3 * warping_error(clip.derained, clip.pairs),
        "ewarp_smoothed": 1e3 * warping_error(smoothed, clip.pairs),
        "infer_ms": clip.infer_ms, "smooth_ms": smooth_ms,
    }
    row["ewarp_change_pct"] = 100.0 * (row["ewarp_smoothed"] / row["ewarp_perframe"] - 1.0)
    if clip.clean is not None:
        row["psnr_input"] = mean_psnr(clip.rainy, clip.clean)
        row["psnr_perframe"] = mean_psnr(clip.derained, clip.clean)
        row["psnr_smoothed"] = mean_psnr(smoothed, clip.clean)
        row["psnr_change_db"] = row["psnr_smoothed"] - row["psnr_perframe"]
    return row


def focus_box(clip: Clip, t: int, margin: int = 48) -> tuple[slice, slice]:
    """Rows/columns around the occluded (non-rigidly moving) area at frame t, e.g. a
    moving object, found from the E_warp occlusion mask away from the frame border."""
    import cv2

    occ = (1.0 - clip.pairs[t - 1][1]).astype(np.uint8)
    occ = cv2.morphologyEx(occ, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    b = 24
    ys, xs = np.nonzero(occ[b:-b, b:-b])
    h, w = occ.shape
    if len(ys) == 0:
        return slice(0, h), slice(0, w)
    y0, y1 = np.percentile(ys, [2, 98]).astype(int) + b
    x0, x1 = np.percentile(xs, [2, 98]).astype(int) + b
    return slice(max(y0 - margin, 0), min(y1 + margin, h)), slice(max(x0 - margin, 0), min(x1 + margin, w))


def frame_strip(clip: Clip, smoothed: list[np.ndarray], path: Path, t: int, count: int = 4) -> None:
    """PNG around the moving area of frame t: one column per frame t..t+count-1, rows
    input / per-frame / smoothed (/ clean)."""
    import cv2

    ys, xs = focus_box(clip, t)
    rows = [clip.rainy, clip.derained, smoothed] + ([clip.clean] if clip.clean is not None else [])
    tiles = [[np.pad(r[i][ys, xs], ((2, 2), (2, 2), (0, 0))) for i in range(t, t + count)] for r in rows]
    grid = np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'clip':16s} {'Ewarp in':>9s} {'per-frame':>9s} {'smoothed':>9s} {'change':>7s} "
            f"{'PSNR pf':>8s} {'PSNR sm':>8s} {'dPSNR':>6s} {'infer ms':>8s} {'smooth ms':>9s}")
    print(head)
    for r in rows:
        psnr = (f"{r['psnr_perframe']:8.2f} {r['psnr_smoothed']:8.2f} {r['psnr_change_db']:+6.2f}"
                if "psnr_perframe" in r else f"{'-':>8s} {'-':>8s} {'-':>6s}")
        print(f"{r['clip']:16s} {r['ewarp_input']:9.3f} {r['ewarp_perframe']:9.3f} "
              f"{r['ewarp_smoothed']:9.3f} "
              f"{r['ewarp_change_pct']:+6.1f}% {psnr} {r['infer_ms']:8.1f} {r['smooth_ms']:9.2f}")


def parse_tuning(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = float(value) if "." in value or "e" in value else int(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, help="folder of make_video_bench.py clips")
    ap.add_argument("--real", type=Path, nargs="*", default=[], help="folders of real rainy frames")
    ap.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--strength", type=float, default=0.7)
    ap.add_argument("--tune", nargs="*", default=[], help="smoother tuning key=value")
    ap.add_argument("--limit", type=int, help="frames per clip")
    ap.add_argument("--strip", type=Path, help="PNG frame strip of the first moving-object clip")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = model_from_path(args.model) if args.model else load_model_info()
    log.info("model %s (%s)", model.name, model.version)
    tuning = parse_tuning(args.tune)
    rows = []
    for clip in load_clips(args.bench, args.real, args.limit):
        smoothed = run_clip(clip, model, args.threads, lambda: TemporalSmoother(args.strength, **tuning))
        rows.append(score(clip, smoothed, clip.smooth_ms))
        if args.strip and "object" in clip.name:
            frame_strip(clip, smoothed, args.strip, len(clip.rainy) // 2)
            log.info("frame strip: %s", args.strip)
            args.strip = None
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"model": f"{model.name} {model.version}", "strength": args.strength,
                                         "tuning": tuning, "clips": rows}, indent=1))


if __name__ == "__main__":
    main()
