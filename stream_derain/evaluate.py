"""``stream-derain eval``: PSNR/SSIM of a model (or of given outputs) on paired folders.

A paired folder holds ``rain/`` and ``clean/`` with matching file names (or pass the
two folders). Scores are reported for the input (rainy vs clean) and the output,
per image and as means, on the Y channel (BT.601) and on RGB, with the brightness
bias and the detail ratio (:mod:`stream_derain.metrics`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends.base import Backend, model_frames
from .errors import InputError
from .io import images
from .metrics import image_scores
from .window import still_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairSet:
    name: str
    rain: Path
    clean: Path

    @classmethod
    def from_dir(cls, folder: Path) -> PairSet:
        rain, clean = folder / "rain", folder / "clean"
        if not rain.is_dir() or not clean.is_dir():
            raise InputError(f"{folder} must hold rain/ and clean/ folders")
        return cls(folder.name, rain, clean)

    def pairs(self) -> list[tuple[Path, Path]]:
        clean = {p.name: p for p in images.list_images(self.clean)}
        found = [(p, clean[p.name]) for p in images.list_images(self.rain) if p.name in clean]
        if not found:
            raise InputError(f"no matching file names between {self.rain} and {self.clean}")
        return found


PSNR_CAP = 100.0  # dB: an identical image (infinite PSNR) counts as this in a set's mean


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Means over a set; PSNRs capped at :data:`PSNR_CAP` first, so that one identical
    image (no-rain sets) does not make the mean infinite."""
    def value(k: str, v: float) -> float:
        return min(v, PSNR_CAP) if k.startswith("psnr") else v
    return {k: round(float(np.mean([value(k, r[k]) for r in rows])), 4) for k in rows[0]}


def evaluate_set(pairs: PairSet, backend: Backend | None = None, predictions: Path | None = None,
                 save_dir: Path | None = None) -> dict[str, Any]:
    """Scores of the input and of the output (from ``backend`` or from ``predictions``,
    a folder of derained images with the rain folder's names). A multi-frame model
    gets each still in every slot of its window."""
    rows_in, rows_out, per_image = [], [], []
    for rain_path, clean_path in pairs.pairs():
        rain, clean = images.read_rgb(rain_path), images.read_rgb(clean_path)
        if rain.shape != clean.shape:
            raise InputError(f"size mismatch: {rain_path} {rain.shape} vs {clean_path} {clean.shape}")
        s_in = image_scores(rain, clean)
        rows_in.append(s_in)
        entry: dict[str, Any] = {"name": rain_path.name, "input": s_in}
        if backend is not None or predictions is not None:
            out = (backend.infer(still_window(rain[None], model_frames(backend)))[0] if backend is not None
                   else images.read_rgb(predictions / rain_path.name))
            s_out = image_scores(out, clean)
            rows_out.append(s_out)
            entry["output"] = s_out
            if save_dir is not None:
                save_dir.mkdir(parents=True, exist_ok=True)
                images.write_rgb(save_dir / rain_path.name, out)
        per_image.append(entry)
    result: dict[str, Any] = {"set": pairs.name, "images": len(rows_in), "input": mean_scores(rows_in)}
    if rows_out:
        result["output"] = mean_scores(rows_out)
        result["gain_psnr_y"] = round(result["output"]["psnr_y"] - result["input"]["psnr_y"], 3)
    result["per_image"] = per_image
    log.info("%s: input %.2f dB / %.4f, output %s", pairs.name, result["input"]["psnr_y"],
             result["input"]["ssim_y"],
             f"{result['output']['psnr_y']:.2f} dB / {result['output']['ssim_y']:.4f}" if rows_out else "-")
    return result
