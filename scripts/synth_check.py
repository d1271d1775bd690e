"""PSNR and brightness bias of a model (ONNX file or checkpoint) on held-out synthetic pairs.

80 crops of 256x256 over Kodak24 and McMaster under the v3 training recipe's rain
(seed 5), split by how much the rain brightened the crop: does the model undo rain
like the rain it was trained on?

    python scripts/synth_check.py engines/derain-student.onnx
    python scripts/synth_check.py runs/v4/teacher/last.pt
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stream_derain import synth
from stream_derain.devsets import DATA_ROOT
from stream_derain.train.data import load_folders, synthetic_pairs

BINS = ((0, 5), (5, 20), (20, 40), (40, 200))  # input bias, grey levels


def runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Nx3xHxW float32 -> Nx3xHxW float32 with the model at ``path``."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"input": x})[0]
    import torch

    from stream_derain.train.supervised import load_derainer

    torch.set_num_threads(1)
    model, _ = load_derainer(path)
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return run


def main(path: Path, n: int = 80) -> None:
    backgrounds = load_folders([DATA_ROOT / "clean/kodak24", DATA_ROOT / "clean/mcmaster"], min_side=256)
    recipe = synth.PairRecipe(heavy_fraction=0.5, compress_fraction=0.3, faint_fraction=0.35,
                              dense_share=0.35)
    pairs = synthetic_pairs(backgrounds, 256, np.random.default_rng(5), recipe,
                            synth.StreakBank(DATA_ROOT / "rain_layers/garg06"))
    run, rows = runner(path), []
    for _ in range(n):
        rainy, clean = next(pairs)
        out = run(np.ascontiguousarray(rainy.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0)
        mse = max(float(np.mean((out - clean) ** 2)), 1e-10)
        rows.append((255 * (rainy - clean).mean(), 255 * (out - clean).mean(), 10 * np.log10(1 / mse)))
    r = np.array(rows)
    cells = [f"all: PSNR {r[:, 2].mean():.2f} dB bias {r[:, 1].mean():+.2f}"]
    for lo, hi in BINS:
        m = (r[:, 0] >= lo) & (r[:, 0] < hi)
        if m.any():
            cells.append(f"input bias {lo}-{hi} (n={m.sum()}): "
                         f"bias {r[m, 1].mean():+.1f} PSNR {r[m, 2].mean():.1f}")
    print(path, " | ".join(cells))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
