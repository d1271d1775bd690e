"""Dev-video table for v4 candidates: training checkpoints (torch), the shipped single-frame
student (ONNX Runtime) and a training-free temporal median filter, on the dev video of
:mod:`stream_derain.devvideo` (rainy with ground truth, rain-free, real).

    python scripts/eval_v4.py runs/v4/implicit_k5/last.pt runs/v4/explicit_k5/last.pt \
        --baseline v3 --baseline median --json runs/v4/dev.json

A checkpoint trained with ``align = "flow"`` is evaluated with its neighbours warped by
DIS flow, as it was trained. Windows at the clip's ends repeat the nearest frame, as the
pipeline does. This script is for comparing candidates; ``stream-derain eval --video``
scores a shipped model through the product's own stages.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from stream_derain.align import align_window, warp
from stream_derain.model.temporal import OFFSETS
from stream_derain.train.temporal import load_temporal
from stream_derain.video_eval import Derain, evaluate_dev_video, summary_line


def window(frames: list[np.ndarray], t: int, offsets: tuple[int, ...]) -> list[np.ndarray]:
    n = len(frames)
    return [frames[min(max(t + o, 0), n - 1)] for o in offsets]


def temporal_derainer(path: Path, mode: str) -> Derain:
    model, ckpt = load_temporal(path)
    model.eval()
    align = ckpt["train_cfg"].get("align", "none")
    offsets = OFFSETS[model.tcfg.frames][mode]

    def run(frames: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        h, w = frames[0].shape[:2]
        ph, pw = (-h) % 4, (-w) % 4
        for t in range(len(frames)):
            win = window(frames, t, offsets)
            if align != "none":
                win = align_window(win, align)
            win = [f.astype(np.float32) / 255.0 for f in win]
            x = torch.from_numpy(np.concatenate(win, axis=2).transpose(2, 0, 1)[None].copy())
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
            with torch.no_grad():
                y = model(x)[0, :, :h, :w].numpy().transpose(1, 2, 0)
            out.append(np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8))
        return out
    return run


def v3_derainer() -> Derain:
    from stream_derain.backends import create_backend
    from stream_derain.catalog import load_model_info

    backend = create_backend("onnxruntime", load_model_info(), "fp32")
    backend.__enter__()
    return lambda frames: [backend.infer(f[None])[0] for f in frames]


def median_filter(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The issue's training-free filter: two aligned neighbours each side (DIS flow); a pixel
    brighter than the aligned median by more than 3 levels becomes that median."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    out = []
    for t, f in enumerate(frames):
        idx = [min(max(t + d, 0), len(frames) - 1) for d in (-2, -1, 1, 2)]
        warped = [warp(frames[i].astype(np.float32), dis.calc(grey[t], grey[i], None)) for i in idx if i != t]
        if not warped:
            out.append(f)
            continue
        med = np.median(np.stack(warped), axis=0)
        cur = f.astype(np.float32)
        bright = (cur.mean(axis=2) - med.mean(axis=2)) > 3
        out.append(np.where(bright[..., None], med, cur).round().clip(0, 255).astype(np.uint8))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="*", type=Path)
    ap.add_argument("--mode", action="append", choices=["centred", "causal"])
    ap.add_argument("--baseline", action="append", choices=["v3", "median", "input"], default=[])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--devvideo", type=Path, default=Path("runs/devvideo"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    cands: list[tuple[str, Derain]] = []
    for b in args.baseline:
        cands.append((b, {"v3": v3_derainer, "median": lambda: median_filter,
                          "input": lambda: (lambda fr: list(fr))}[b]()))
    for ck in args.checkpoints:
        for mode in args.mode or ["centred"]:
            cands.append((f"{ck.parent.name}/{ck.stem} {mode}", temporal_derainer(ck, mode)))
    results = []
    for name, fn in cands:
        results.append(evaluate_dev_video(fn, args.devvideo, name))
        print(summary_line(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
