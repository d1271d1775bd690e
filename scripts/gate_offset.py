"""Choose the replacement head's operating point on *training* clips (never the dev video).

The head's gate g = sigmoid(scale (logit + offset)) trades rain left in real clips against
harm on rain-free video: ``offset`` moves the point where it is half open, ``scale``
(default 1, the gate as trained) makes it sharper (> 1) or softer. For each pair this
prints, on the training part of the data:

- rain-free: PSNR-Y of the output against the input and its bias, over the clean
  training clips (Cityscapes seq0000-0003, DAVIS camel and parkour, the Udacity clip's
  first 170 frames), 12 frames each;
- real rain: the share of transient pixels removed (:func:`stream_derain.video_eval.real_scores`)
  and the background detail, over the first 60% of ra1, rb2 and realrain_pexels 262, 367
  and 5 (the part the dev video leaves out), 12 frames each.

    python scripts/gate_offset.py runs/v4/replace_k3/last.pt --offset 0 1 2 3 [--scale 1 2] [--floor 6]

The head runs once per frame; offsets and scales are applied to its logits afterwards.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from eval_v4 import window  # scripts/, beside this one: the window at a clip's ends

from stream_derain.align import FLOWS, align_window
from stream_derain.devvideo import DATA_ROOT, REAL_TRAIN_SHARE, fit, read_source
from stream_derain.metrics import image_scores
from stream_derain.model.temporal import OFFSETS
from stream_derain.train.temporal import load_temporal
from stream_derain.video_eval import real_means, real_scores

CLEAN = ("clean_video/cityscapes/seq0000", "clean_video/cityscapes/seq0001", "clean_video/cityscapes/seq0002",
         "clean_video/cityscapes/seq0003", "clean_video/davis_extra/camel", "clean_video/davis_extra/parkour",
         "clean_video/udacity/solidWhiteRight.mp4")
REAL = ("real_video/ra1", "real_video/rb2", "real_video/realrain_pexels/262.mp4",
        "real_video/realrain_pexels/367.mp4", "real_video/realrain_pexels/5.mp4")
FRAMES = 12


def crop4(img: np.ndarray) -> np.ndarray:
    """The top-left part whose sides are multiples of 4 (the network's scale)."""
    return img[:img.shape[0] // 4 * 4, :img.shape[1] // 4 * 4]


def terms(model, frames: list[np.ndarray], align: str) -> list[tuple[np.ndarray, ...]]:
    """Per frame (v3 output, removal, logits) as HxWx3 / HxW float32 arrays."""
    offsets = OFFSETS[model.tcfg.frames]["centred"]
    out = []
    for t in range(len(frames)):
        win = align_window(window(frames, t, offsets), align, offsets=offsets)
        x = crop4(np.concatenate([w.astype(np.float32) / 255.0 for w in win], axis=2))
        x = torch.from_numpy(x.transpose(2, 0, 1)[None].copy())
        with torch.no_grad():
            single, removal, logits, _ = model.replace_terms(x)
        out.append((single[0].numpy().transpose(1, 2, 0), removal[0].numpy().transpose(1, 2, 0),
                    logits[0, 0].numpy()))
    return out


def outputs(cached: list[tuple[np.ndarray, ...]], offset: float, scale: float = 1.0) -> list[np.ndarray]:
    res = []
    for single, removal, logits in cached:
        g = 1.0 / (1.0 + np.exp(-scale * (logits + offset)))
        res.append(np.clip((single - g[..., None] * removal) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--offset", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    ap.add_argument("--scale", type=float, nargs="+", default=[1.0],
                    help="the gate's sharpness (1: as trained)")
    ap.add_argument("--floor", type=float, help="override the model's floor (grey levels)")
    ap.add_argument("--every", action="store_true", help="replace only where every neighbour is darker")
    ap.add_argument("--align", choices=sorted(FLOWS), help="the flow mode (default: the checkpoint's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, ckpt = load_temporal(args.checkpoint)
    align = args.align or ckpt["train_cfg"].get("align", "flow")
    if args.floor is not None or args.every:
        model.tcfg = replace(model.tcfg, floor=model.tcfg.floor if args.floor is None else args.floor,
                             every=args.every or model.tcfg.every)
    model.eval()
    clean, real = [], []
    for src in CLEAN:
        frames = [fit(f) for f in read_source(DATA_ROOT / src)[:FRAMES]]
        clean.append(([crop4(f) for f in frames], terms(model, frames, align)))
    for src in REAL:
        frames = read_source(DATA_ROOT / src)
        frames = [fit(f) for f in frames[:int(len(frames) * REAL_TRAIN_SHARE)][-FRAMES:]]
        real.append(([crop4(f) for f in frames], terms(model, frames, align)))
    for scale, offset in ((s, o) for s in args.scale for o in args.offset):
        rows = [image_scores(o, f) for frames, cached in clean
                for o, f in zip(outputs(cached, offset, scale), frames)]
        psnr = float(np.mean([min(r["psnr_y"], 100.0) for r in rows]))
        bias = float(np.mean([r["bias"] for r in rows]))
        kept = float(np.mean([r["detail"] for r in rows]))
        q = real_means({i: real_scores(outputs(cached, offset, scale), frames)
                        for i, (frames, cached) in enumerate(real)})
        print(f"scale {scale:g}, offset {offset:+.2f}: rain-free {psnr:.2f} dB, bias {bias:+.2f}, "
              f"detail {kept:.3f} | real removed {q['rain_removed']:.1%}, "
              f"background detail {q['background_detail']:.3f}", flush=True)


if __name__ == "__main__":
    main()
