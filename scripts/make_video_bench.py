"""Render the rainy-video benchmark: rainy.mp4 + clean.mp4 pairs per clip.

Two kinds of clip:

- ``davis_<seq>``: real camera and object motion. The first ``--davis-frames`` frames of
  each ``../shared/data/clean_video/davis/<seq>`` clip (854x480, box-resized to the
  output size) under temporally coherent synthetic rain
  (:func:`stream_derain.synth.rain_over_frames`, one fixed seed per clip). The clean
  clip is also the benchmark's *rain-free* input (``scripts/eval_smoother.py``).
- ``clip<k>``: the project's synthesiser (:func:`stream_derain.synth.rainy_video`)
  over clean photos from ``../shared/data/clean/*`` with a simulated camera pan/zoom and
  coherently falling rain. Videos are lossless RGB (libx264rgb, qp 0), 640x360 by default.
One clip in four ("object" clips) also has an independently moving textured patch
(a third of the frame height, crossing the frame and back),
pasted into both the clean and the rainy frames under the same rain, so that ghost
trails of a temporal filter show.

Backgrounds: images that the trainer holds out (those matching a dev-set image, see
``stream_derain.train.data.drop_overlaps``) are preferred so the per-frame model has
not been trained on them; with fewer than needed, the rest come from all images.

These clips are development material derived from research data: write them under
``.data/`` (git-ignored) or /tmp and never commit them.

    python scripts/make_video_bench.py --out runs/video_bench --clips 4 --frames 48 --davis-frames 40
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import av
import cv2
import numpy as np

from stream_derain import synth
from stream_derain.synth import CameraPath, RainParams, camera_crop, rainy_video, random_camera, sample_params
from stream_derain.train.config import DATA_ROOT
from stream_derain.train.data import list_images, load_rgb, thumbnail

MIN_PSNR = 12.0  # dB; the heaviest dev set (heavy25) averages 13.1 dB
log = logging.getLogger("make_video_bench")


def write_video(path: Path, frames: list[np.ndarray], fps: int = 24) -> None:
    """Lossless RGB mp4 (libx264rgb qp 0) from HxWx3 float32 [0, 1] frames."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=fps, options={"qp": "0", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "rgb24"
        for f in frames:
            u8 = np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(u8, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def pick_backgrounds(n: int, rng: np.random.Generator) -> list[Path]:
    """``n`` clean images, held-out (dev-set look-alike) ones first."""
    paths = sorted(p for d in sorted((DATA_ROOT / "clean").iterdir()) if d.is_dir() for p in list_images(d))
    refs = [thumbnail(load_rgb(p)) for d in ("sirr20", "heavy25")
            for p in list_images(DATA_ROOT / "pairs" / d / "clean")] if (DATA_ROOT / "pairs").is_dir() else []
    held = []
    if refs:
        ref = np.stack(refs)
        held = [p for p in paths if np.abs(ref - thumbnail(load_rgb(p))).mean(axis=(1, 2, 3)).min() <= 0.01]
    rest = [p for p in paths if p not in held]
    rng.shuffle(held)
    rng.shuffle(rest)
    return (held + rest)[:n]


def object_track(n: int, hw: tuple[int, int], size: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Top-left corners of a patch crossing the frame and back (about 15-20 px/frame at
    640x360 and 48 frames), drifting vertically."""
    h, w = hw
    y0, y1 = rng.uniform(0.1, 0.6) * (h - size), rng.uniform(0.1, 0.9) * (h - size)
    x0, x1 = 0.03 * w, w - size - 0.03 * w
    if rng.uniform() < 0.5:
        x0, x1 = x1, x0
    track = []
    for i in range(n):
        u = i / max(n - 1, 1)
        v = 1.0 - abs(1.0 - 2.0 * u)  # 0 -> 1 -> 0
        track.append((int(round(y0 + (y1 - y0) * u)), int(round(x0 + (x1 - x0) * v))))
    return track


def object_clip(src: np.ndarray, patch_src: np.ndarray, n: int, hw: tuple[int, int], rng: np.random.Generator,
                params: RainParams, cam: CameraPath) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(rainy, clean) with a textured patch moving over the panning background.

    The rain layer comes from ``rainy_video`` over a black source (additive, no haze, so
    the rendered frame *is* the rain layer) and is composed over the clean frames."""
    p = replace(params, haze=0.0)
    layers, _ = rainy_video(np.zeros_like(src), n, hw, rng, replace(p, screen_blend=False), cam)
    size = hw[0] // 3
    patch = camera_crop(patch_src, (size, size), CameraPath((0.5, 0.5), (0.5, 0.5), (1.0, 1.0)), 0.0)
    rainy, clean = [], []
    for i, (y, x) in enumerate(object_track(n, hw, size, rng)):
        bg = camera_crop(src, hw, cam, i / max(n - 1, 1)).copy()
        bg[y:y + size, x:x + size] = patch
        s = layers[i]
        out = 1.0 - (1.0 - bg) * (1.0 - s) if p.screen_blend else bg + s
        clean.append(bg)
        rainy.append(np.clip(out, 0.0, 1.0).astype(np.float32))
    return rainy, clean


def plausible_params(src: np.ndarray, hw: tuple[int, int], heavy: float, cam: CameraPath,
                     rng: np.random.Generator, min_psnr: float = MIN_PSNR) -> RainParams:
    """A rain condition of severity ``heavy`` that leaves the picture visible: redrawn
    while a test frame's PSNR is below ``min_psnr`` (bright backgrounds under dense,
    bright rain saturate to white, which no deraining can undo)."""
    for _ in range(20):
        params = sample_params(rng, heavy=heavy)
        (rainy,), (clean,) = rainy_video(src, 1, hw, np.random.default_rng(0), params, cam)
        if 10 * np.log10(1 / max(float(np.mean((rainy - clean) ** 2)), 1e-12)) >= min_psnr:
            return params
        heavy *= 0.85
    return params


def rain_over(frames: list[np.ndarray], rng: np.random.Generator, params: RainParams) -> list[np.ndarray]:
    """Coherent rain over a clip: the synthesiser's ``rain_over_frames`` (synth v2), or,
    with an older synthesiser, its ``rainy_video`` rain layer over black added on."""
    fn = getattr(synth, "rain_over_frames", None)
    if fn is not None:
        return fn(frames, rng, params)
    h, w = frames[0].shape[:2]
    p = replace(params, haze=0.0, screen_blend=False)
    layers, _ = rainy_video(np.zeros((h, w, 3), np.float32), len(frames), (h, w), rng, p,
                            CameraPath((0.5, 0.5), (0.5, 0.5), (1.0, 1.0)))
    return [np.clip(f + s, 0.0, 1.0).astype(np.float32) for f, s in zip(frames, layers)]


def load_davis(folder: Path, n: int, hw: tuple[int, int]) -> list[np.ndarray]:
    """The first ``n`` frames of a DAVIS sequence, area-resized to ``hw``: float32 RGB."""
    frames = []
    for path in sorted(folder.glob("*.jpg"))[:n]:
        img = cv2.resize(load_rgb(path), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        frames.append(np.clip(img, 0.0, 1.0).astype(np.float32))
    return frames


def davis_clips(out: Path, n: int, hw: tuple[int, int], seed: int) -> None:
    """One rainy/clean pair per DAVIS sequence; seed ``seed + 100 + k`` for sequence k,
    severities cycling light, medium, heavy; rain redrawn milder while a frame drowns."""
    root = DATA_ROOT / "clean_video" / "davis"
    for k, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        clean = load_davis(folder, n, hw)
        rng = np.random.default_rng(seed + 100 + k)
        heavy = [0.3, 0.6, 0.9][k % 3]
        for _ in range(10):
            params = sample_params(rng, heavy=heavy)
            rainy = rain_over(clean, np.random.default_rng(seed + 200 + k), params)
            if frame_psnr(rainy, clean) >= MIN_PSNR:
                break
            heavy *= 0.85
        dest = out / f"davis_{folder.name}"
        dest.mkdir(parents=True, exist_ok=True)
        write_video(dest / "rainy.mp4", rainy)
        write_video(dest / "clean.mp4", clean)
        meta = {"source": str(folder), "params": asdict(params), "frames": len(clean), "size": [hw[1], hw[0]],
                "synth": "rain_over_frames" if hasattr(synth, "rain_over_frames") else "rainy_video layer"}
        (dest / "meta.json").write_text(json.dumps(meta, indent=1))
        log.info("%s: %d frames, rainy PSNR %.2f dB", dest.name, len(clean), frame_psnr(rainy, clean))


def frame_psnr(rainy: list[np.ndarray], clean: list[np.ndarray]) -> float:
    """Mean RGB PSNR (dB) of float [0, 1] frame lists."""
    return float(np.mean([10 * np.log10(1 / max(float(np.mean((r - c) ** 2)), 1e-12))
                          for r, c in zip(rainy, clean)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="640x360", help="WxH")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--davis-frames", type=int, default=40, help="frames per DAVIS clip (0: no DAVIS clips)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    w, h = map(int, args.size.lower().split("x"))
    if args.davis_frames > 0:
        davis_clips(args.out, args.davis_frames, (h, w), args.seed)
    rng = np.random.default_rng(args.seed)
    backgrounds = pick_backgrounds(args.clips + 1, rng)
    for k in range(args.clips):
        src = load_rgb(backgrounds[k])
        cam = random_camera(rng)
        params = plausible_params(src, (h, w), [0.3, 0.8, 0.5, 1.0][k % 4], cam, rng)
        is_object = k % 4 == 2
        if is_object:
            rainy, clean = object_clip(src, load_rgb(backgrounds[-1]), args.frames, (h, w), rng, params, cam)
        else:
            rainy, clean = rainy_video(src, args.frames, (h, w), rng, params, cam)
        folder = args.out / f"clip{k:02d}{'_object' if is_object else ''}"
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / "rainy.mp4", rainy)
        write_video(folder / "clean.mp4", clean)
        meta = {"background": str(backgrounds[k]), "params": asdict(params), "camera": asdict(cam),
                "frames": args.frames, "size": [w, h], "moving_object": is_object}
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))
        log.info("%s: %s, rainy PSNR %.2f dB", folder.name, backgrounds[k].name, frame_psnr(rainy, clean))


if __name__ == "__main__":
    main()
