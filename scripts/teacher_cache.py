"""Run SPANet (the real-rain teacher, ``stream_derain.model.spanet``) once over real rainy
frames and cache its outputs as PNG, for training (it takes ~9 s per 640x480 frame on 2
CPU cores, far too slow to run inside a training loop).

Sources, under ``DATA_ROOT`` (``../shared/data``):

- ``ra1``, ``rb2``: the JPG frames of ``real_video/ra1`` and ``real_video/rb2``, in name
  order; a frame's stem is its file stem (``00001`` ...);
- ``pexels-<n>``: the clip ``real_video/realrain_pexels/<n>.mp4`` (49 frames, decoded with
  PyAV); a frame's stem is its 0-based decode index, 5 digits (``00000`` ...).

Each frame is box-resized (``cv2.INTER_AREA``) so that its long side is at most
``--max-side`` (default 480; never enlarged), and only every ``--step``-th frame (default
2: indices 0, 2, 4, ...) is processed.

**Held-out frames**: the last 20% of each source's frames (``ceil(0.2 * n)``: the last 12
of ra1's and rb2's 60 frames, 00049..00060; the last 10 of each clip's 49, 00039..00048)
are NEVER processed, so that nothing trained on this cache has seen them: they are for
evaluation. Each source's ``split.json`` lists its frame count, the stems processed and
the stems held out.

Layout (``runs/`` is git-ignored; never commit the cache):

    runs/teacher/spanet/<source>/<stem>.png      SPANet's output (RGB PNG, uint8)
    runs/teacher/spanet/<source>/<stem>.in.png   the resized input it was given (same size)
    runs/teacher/spanet/<source>/split.json

The input is written before the output, both atomically, so a frame is done when its
``<stem>.png`` exists; a rerun skips those frames (resumable).

    nice -n 19 python scripts/teacher_cache.py [--sources ra1 rb2 pexels-262] \\
        [--max-side 480] [--step 2] [--out runs/teacher/spanet]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from stream_derain.devsets import DATA_ROOT
from stream_derain.io.images import list_images, read_rgb
from stream_derain.io.video import to_rgb
from stream_derain.model.spanet import derain_rgb, load_spanet

HOLDOUT = 0.2  # the last fraction of each source's frames, never processed (evaluation)
TEACHER = DATA_ROOT.parent / "teachers" / "spanet" / "spanet_spa_state_dict.pth"
PEXELS = DATA_ROOT / "real_video" / "realrain_pexels"


def all_sources() -> list[str]:
    """Every source name: ra1, rb2, then pexels-<n> for each clip (numeric order)."""
    clips = sorted(PEXELS.glob("*.mp4"), key=lambda p: (len(p.stem), p.stem))
    return ["ra1", "rb2"] + [f"pexels-{p.stem}" for p in clips]


def resize(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Box-resize so that the long side is at most ``max_side`` (never enlarges)."""
    h, w = rgb.shape[:2]
    f = max_side / max(h, w)
    if f >= 1:
        return rgb
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def load_frames(source: str) -> list[tuple[str, Callable[[], np.ndarray]]]:
    """(stem, loader of the HxWx3 uint8 RGB frame) for each frame of ``source``, in order."""
    if source.startswith("pexels-"):
        path = PEXELS / f"{source.removeprefix('pexels-')}.mp4"
        with av.open(str(path)) as container:
            frames = [to_rgb(f) for f in container.decode(video=0)]
        return [(f"{i:05d}", lambda f=f: f) for i, f in enumerate(frames)]
    folder = DATA_ROOT / "real_video" / source
    return [(p.stem, lambda p=p: read_rgb(p)) for p in list_images(folder)]


def split(n: int, step: int) -> tuple[list[int], list[int]]:
    """(indices to process, held-out indices) of a source with ``n`` frames."""
    held = math.ceil(n * HOLDOUT)
    return list(range(0, n - held, step)), list(range(n - held, n))


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB PNG atomically (a killed run leaves no partial file)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


def run_source(model: torch.nn.Module, source: str, out_root: Path, max_side: int, step: int) -> int:
    """Process one source; returns the number of frames computed (not skipped)."""
    frames = load_frames(source)
    todo, held = split(len(frames), step)
    out = out_root / source
    out.mkdir(parents=True, exist_ok=True)
    (out / "split.json").write_text(json.dumps({
        "frames": len(frames), "step": step, "max_side": max_side, "holdout_fraction": HOLDOUT,
        "processed": [frames[i][0] for i in todo], "held_out": [frames[i][0] for i in held],
    }, indent=1) + "\n")
    print(f"[{source}] {len(frames)} frames: {len(todo)} to process (step {step}), "
          f"last {len(held)} held out ({frames[held[0]][0]}..{frames[held[-1]][0]})", flush=True)
    done = 0
    for k, i in enumerate(todo, 1):
        stem, load = frames[i]
        target = out / f"{stem}.png"
        if target.exists():
            continue
        rgb = resize(load(), max_side)
        t0 = time.perf_counter()
        derained = derain_rgb(model, rgb)
        dt = time.perf_counter() - t0
        write_png(out / f"{stem}.in.png", rgb)
        write_png(target, derained)
        done += 1
        change = np.abs(derained.astype(np.int16) - rgb.astype(np.int16)).mean()
        print(f"[{source}] {k}/{len(todo)} {stem} {rgb.shape[1]}x{rgb.shape[0]} {dt:.1f} s "
              f"mean |out - in| {change:.2f}", flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", nargs="+", default=None,
                    help="source names (default: all): ra1 rb2 pexels-<n> ...")
    ap.add_argument("--max-side", type=int, default=480)
    ap.add_argument("--step", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/teacher/spanet"))
    ap.add_argument("--weights", type=Path, default=TEACHER)
    args = ap.parse_args(argv)
    known = all_sources()
    sources = args.sources or known
    unknown = [s for s in sources if s not in known]
    if unknown:
        ap.error(f"unknown source(s) {unknown}; known: {known}")
    torch.set_num_threads(1)
    model = load_spanet(args.weights)
    t0 = time.perf_counter()
    total = 0
    for source in sources:
        total += run_source(model, source, args.out, args.max_side, args.step)
    print(f"done: {total} frames computed in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
