"""Quantization-aware fine-tuning probe for INT8 (issue 29): can training move v3's INT8
agreement with FP32 toward the gate's 45 dB?

v3 in torch (weights from ``checkpoints/v3/derain-student-v3.onnx``), NNCF post-training
quantization on 64 calibration windows (``stream_derain.calibration``, never dev
frames), then self-distillation: Adam on the quantized model's weights and quantizer
ranges, L1 to the FP32 model's output on 8 random 96 px crops a step. Every 50 steps it
prints the mean PSNR-Y of INT8 against FP32 on 6 frames of three single-image dev sets.

    python scripts/qat_probe.py [LR] [STEPS]      # default 3e-5, 400

Needs torch, nncf and the research data (``../shared/data``). A probe, not a product path:
see docs/int8.md for what it measured.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stream_derain.calibration import calibration_windows
from stream_derain.catalog import load_model_info
from stream_derain.devsets import DATA_ROOT
from stream_derain.metrics import psnr, rgb_to_y
from stream_derain.model.student import build_student
from stream_derain.quantize.gate import still_sets
from stream_derain.train.supervised import init_from

REPO = Path(__file__).resolve().parents[1]
SETS = ("heavy25", "sirr20", "camvid_rain")


def tensor(window: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(window.transpose(2, 0, 1)[None].astype(np.float32) / 255)


def to_uint8(y: torch.Tensor) -> np.ndarray:
    return (y.clamp(0, 1)[0].numpy().transpose(1, 2, 0) * 255 + .5).astype(np.uint8)


def agreement(fp: torch.nn.Module, q: torch.nn.Module,
              dev: list[tuple[str, torch.Tensor]]) -> dict[str, float]:
    res: dict[str, list[float]] = {}
    with torch.no_grad():
        for name, x in dev:
            a, b = (to_uint8(m(x)) for m in (fp, q))
            res.setdefault(name, []).append(psnr(rgb_to_y(b), rgb_to_y(a)))
    return {k: round(float(np.mean(v)), 2) for k, v in res.items()}


def main() -> None:
    import nncf

    lr = float(sys.argv[1]) if len(sys.argv) > 1 else 3e-5
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    torch.set_num_threads(1)
    info = load_model_info("derain-student-v3")
    fp = build_student(**info.meta["student"])
    init_from(fp, REPO / "checkpoints" / "v3" / "derain-student-v3.onnx")
    fp.eval()
    windows = calibration_windows(info, 64, (320, 192), DATA_ROOT, 0)
    cal = [tensor(np.concatenate(w.frames, 2)) for w in windows]
    dev = [(s.name, tensor(np.concatenate(w.frames, 2))[..., :w.frames[0].shape[0] // 4 * 4,
                                                         :w.frames[0].shape[1] // 4 * 4])
           for s in still_sets(info) if s.name in SETS for w, _ in s.load()[:6]]
    q = nncf.quantize(fp, nncf.Dataset(cal), subset_size=len(cal), fast_bias_correction=True)
    print("ptq", agreement(fp, q, dev), flush=True)
    q.train()
    opt, rng, t0 = torch.optim.Adam(q.parameters(), lr=lr), np.random.default_rng(0), time.time()
    for step in range(1, steps + 1):
        crops = []
        for i in rng.integers(len(cal), size=8):
            _, _, h, w = cal[i].shape
            y0, x0 = rng.integers(0, h - 96), rng.integers(0, w - 96)
            crops.append(cal[i][..., y0:y0 + 96, x0:x0 + 96])
        x = torch.cat(crops)
        with torch.no_grad():
            target = fp(x)
        loss = F.l1_loss(q(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            q.eval()
            print(step, round(loss.item(), 5), agreement(fp, q, dev), f"{time.time() - t0:.0f} s", flush=True)
            q.train()


if __name__ == "__main__":
    main()
