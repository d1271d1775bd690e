"""Pictures for docs/derainer_v2.md and v3.md, rendered locally from ../shared/data.

    python scripts/figures.py synth  --out runs/figures/synth_v2.jpg
    python scripts/figures.py compare --column v1=runs/v1/derain-student.onnx \
        --column v2=runs/v2/exp/derain-student.onnx --column v3=engines/derain-student-v3.onnx \
        --out runs/figures/real_v1_v2_v3.jpg

``synth``: rows of v2 synthetic samples (procedural, photometric, compressed,
rain-free) beside real rainy frames (``real_rain``, ``real_video``). ``compare``:
real rainy frames through several models side by side. The pictures are derived from
the research data, so they stay under runs/ (git-ignored) and are never committed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from stream_derain import synth
from stream_derain.backends import create_backend
from stream_derain.catalog import model_from_path
from stream_derain.devsets import DATA_ROOT
from stream_derain.io import images

TILE = (320, 240)


def tile(rgb: np.ndarray, label: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    side = min(h, w * TILE[1] // TILE[0])
    y0, x0 = (h - side) // 2, (w - side * TILE[0] // TILE[1]) // 2
    crop = rgb[y0:y0 + side, max(x0, 0):max(x0, 0) + side * TILE[0] // TILE[1]]
    out = cv2.resize(crop, TILE, interpolation=cv2.INTER_AREA)
    cv2.putText(out, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 2)
    return out


def real_frames() -> list[tuple[str, np.ndarray]]:
    picks = [("real_rain", DATA_ROOT / "real_rain", 6), ("ra1", DATA_ROOT / "real_video/ra1", 1),
             ("rb2", DATA_ROOT / "real_video/rb2", 1)]
    out = []
    for label, folder, n in picks:
        files = images.list_images(folder)
        out += [(label, images.read_rgb(p)) for p in files[:: max(len(files) // n, 1)][:n]]
    return out


def synth_grid(out: Path) -> None:
    rng = np.random.default_rng(11)
    bank = synth.StreakBank(DATA_ROOT / "rain_layers" / "garg06")
    backgrounds = images.list_images(DATA_ROOT / "clean" / "camvid")[::60]
    tiles = []
    for i, path in enumerate(backgrounds[:8]):
        clean = images.read_rgb(path).astype(np.float32) / 255.0
        recipe = synth.PairRecipe(compress_fraction=1.0 if i % 4 == 3 else 0.0)
        rainy, _ = synth.rain_pair(clean, rng, recipe, bank, rain_free=i == 7)
        label = "synthetic v2" + (", jpeg" if i % 4 == 3 else "") + (", rain-free" if i == 7 else "")
        tiles.append(tile((rainy * 255 + 0.5).astype(np.uint8), label))
    tiles += [tile(f, f"real: {label}") for label, f in real_frames()]
    rows = [np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles) - len(tiles) % 4, 4)]
    out.parent.mkdir(parents=True, exist_ok=True)
    images.write_rgb(out, np.vstack(rows))


def compare(models: list[tuple[str, Path]], out: Path) -> None:
    """Real rainy frames (rows) through each (label, ONNX) model (columns)."""
    frames = real_frames()
    columns = [[tile(f, f"input: {label}") for label, f in frames]]
    for name, path in models:
        with create_backend("onnxruntime", model_from_path(path, 4)) as be:
            columns.append([tile(be.infer(f[None])[0], name) for _, f in frames])
    out.parent.mkdir(parents=True, exist_ok=True)
    images.write_rgb(out, np.vstack([np.hstack(row) for row in zip(*columns)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["synth", "compare"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--column", action="append", default=[], metavar="LABEL=ONNX",
                    help="compare: one column per model, e.g. --column v2=runs/v2/exp/derain-student.onnx")
    args = ap.parse_args()
    if args.what == "synth":
        synth_grid(args.out)
        return
    columns = [c.split("=", 1) for c in args.column] or [["shipped", "engines/derain-student-v3.onnx"]]
    compare([(label, Path(path)) for label, path in columns], args.out)


if __name__ == "__main__":
    main()
