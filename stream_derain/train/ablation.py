"""``stream-derain train ablation``: the ablation table of the task-transfer recipe.

Every row is a student checkpoint. It is exported to ONNX (FP32, checked against
torch) in a scratch folder and run by ONNX Runtime, exactly as users run it, on:

- the paired dev sets (PSNR / SSIM on Y), never trained on by any stage;
- held-out frames of the real rainy videos (the last ``holdout`` of each folder, the
  block that the recognition teacher, the distillation and the semi-supervised term
  never see): the recognition teacher's mean rain probability on the derained frames
  (lower is better; the ``input`` row scores the rainy frames themselves), and the
  same score from an optional *judge*: a second recognition model (other seed, other
  widths) that no student stage trained against, meant to catch a row that games
  the teacher it optimised (trained on the same data, it was fooled the same way;
  see docs/ablation.md).

Training time is the row's own stage plus every stage it was initialised from
(teachers and distillation included), read from the checkpoints.
"""

from __future__ import annotations

import json
import logging
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..backends import create_backend
from ..catalog import model_from_path
from ..evaluate import PairSet, evaluate_set
from ..io import images
from ..model.export import check_against_torch, export_onnx
from ..model.student import count_macs_per_pixel, count_parameters
from .checkpoint import read_checkpoint
from .config import DATA_ROOT
from .lineage import parent_paths
from .supervised import load_student
from .transfer.data import split_holdout
from .transfer.teachers import RECOGNITION_ARCH, load_frozen, rain_score

log = logging.getLogger(__name__)
DEV_SETS = tuple(str(DATA_ROOT / "pairs" / s) for s in ("sirr20", "heavy25"))
REAL_DIRS = tuple(str(DATA_ROOT / "real_video" / s) for s in ("ra1", "rb2"))


@dataclass(frozen=True)
class AblationConfig:
    rows: tuple[tuple[str, str], ...]  # (row name, student checkpoint)
    recognition: str = "runs/transfer/recognition/last.pt"
    judge: str = ""  # a second recognition checkpoint, never trained against; "" = none
    sets: tuple[str, ...] = DEV_SETS
    real_dirs: tuple[str, ...] = REAL_DIRS
    holdout: float = 0.2


def held_out_frames(folder: Path, holdout: float) -> list[np.ndarray]:
    """The frames of a folder that the training stages held out (the same
    :func:`~.transfer.data.split_holdout` block), HxWx3 uint8."""
    _, (held,) = split_holdout([images.list_images(folder)], holdout)
    return [images.read_rgb(p) for p in held]


def lineage_seconds(ckpt: dict[str, Any]) -> float | None:
    """Training seconds of a checkpoint plus those of the checkpoints it started from;
    None when a checkpoint did not record its time."""
    if "train_seconds" not in ckpt["extra"]:
        return None
    seconds = float(ckpt["extra"]["train_seconds"])
    parents = [p for _, p in parent_paths(ckpt["arch"], ckpt.get("train_cfg", {}))]
    before = [lineage_seconds(read_checkpoint(Path(p))) for p in parents
              if Path(p).is_file() and Path(p).suffix != ".onnx"]
    return None if None in before else seconds + sum(before)


def score_real(backend: Any, scorers: dict[str, Any],
               frames: list[np.ndarray]) -> tuple[dict[str, float], list[np.ndarray]]:
    """Each scorer's mean rain probability of the derained frames (``backend`` None: of
    the frames themselves), and the derained frames."""
    outs = [backend.infer(f[None])[0] if backend is not None else f for f in frames]
    floats = [o.astype(np.float32) / 255.0 for o in outs]
    return {name: float(np.mean([rain_score(m, f) for f in floats])) for name, m in scorers.items()}, outs


def export_row(ckpt_path: Path, work: Path, row: dict[str, Any]) -> Path:
    """Export a checkpoint to a checked FP32 ONNX file in ``work``; fills the model columns."""
    model, ckpt = load_student(ckpt_path)
    onnx_path = work / f"{row['row']}.onnx"
    export_onnx(model, onnx_path)
    check_against_torch(model, onnx_path)
    row.update(steps=ckpt["step"], macs_per_pixel=round(count_macs_per_pixel(model)),
               parameters=count_parameters(model), train_seconds=lineage_seconds(ckpt),
               multiple=model.cfg.scale)
    return onnx_path


def evaluate_row(name: str, ckpt_path: Path | None, cfg: AblationConfig, scorers: dict[str, Any],
                 real: dict[str, list[np.ndarray]], work: Path) -> dict[str, Any]:
    """One table row; ``ckpt_path`` None scores the rainy inputs."""
    row: dict[str, Any] = {"row": name, "checkpoint": str(ckpt_path) if ckpt_path else None, "outputs": {}}
    with ExitStack() as stack:
        backend = None
        if ckpt_path is not None:
            onnx_path = export_row(ckpt_path, work, row)
            model = model_from_path(onnx_path, row["multiple"])
            backend = stack.enter_context(create_backend("onnxruntime", model))
        for s in cfg.sets:
            res = evaluate_set(PairSet.from_dir(Path(s)), backend)
            row[res["set"]] = res["output" if backend is not None else "input"]
        for folder, frames in real.items():
            scores, row["outputs"][folder] = score_real(backend, scorers, frames)
            row.update({f"{scorer}_{folder}": v for scorer, v in scores.items()})
    log.info("ablation row %s: %s", name, {k: v for k, v in row.items() if k != "outputs"})
    return row


def run_ablation(cfg: AblationConfig) -> list[dict[str, Any]]:
    """All rows, the ``input`` row first; each row keeps its derained real frames under
    ``outputs`` (for :func:`side_by_side`)."""
    scorers = {"rain": load_frozen(Path(cfg.recognition), RECOGNITION_ARCH)}
    if cfg.judge:
        scorers["judge"] = load_frozen(Path(cfg.judge), RECOGNITION_ARCH)
    real = {Path(d).name: held_out_frames(Path(d), cfg.holdout) for d in cfg.real_dirs}
    with tempfile.TemporaryDirectory() as tmp:
        rows = [evaluate_row("input", None, cfg, scorers, real, Path(tmp))]
        rows += [evaluate_row(name, Path(path), cfg, scorers, real, Path(tmp)) for name, path in cfg.rows]
    return rows


def markdown_table(rows: list[dict[str, Any]], sets: list[str], real: list[str]) -> str:
    scorers = ["rain"] + (["judge"] if f"judge_{real[0]}" in rows[0] else [])
    head = (["row"] + [f"{s} PSNR-Y / SSIM-Y" for s in sets]
            + [f"{'rain score' if s == 'rain' else 'judge'} {r}" for s in scorers for r in real]
            + ["MACs/px", "params", "steps", "train time"])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["row"]] + [f"{r[s]['psnr_y']:.2f} / {r[s]['ssim_y']:.4f}" for s in sets]
        cells += [f"{r[f'{s}_{d}']:.3f}" for s in scorers for d in real]
        if r["checkpoint"]:
            minutes = "n/a" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f} min"
            cells += [f"{r['macs_per_pixel']:,}", f"{r['parameters']:,}", str(r["steps"]), minutes]
        else:
            cells += ["-"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def side_by_side(rows: list[dict[str, Any]], names: list[str], path: Path, per_folder: int = 2) -> None:
    """A picture of held-out real frames (rows: frames; columns: ``names``), labelled."""
    by_name = {r["row"]: r for r in rows}
    strips = []
    for folder in by_name[names[0]]["outputs"]:
        n = len(by_name[names[0]]["outputs"][folder])
        for i in np.linspace(0, n - 1, per_folder).round().astype(int):
            tiles = []
            for name in names:
                frame = by_name[name]["outputs"][folder][i]
                tile = cv2.resize(frame, (480, 300), interpolation=cv2.INTER_AREA)
                cv2.putText(tile, name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2)
                tiles.append(tile)
            strips.append(np.hstack(tiles))
    images.write_rgb(path, np.vstack(strips))


def write_reports(rows: list[dict[str, Any]], cfg: AblationConfig, json_path: Path | None,
                  markdown_path: Path | None) -> str:
    sets = [Path(s).name for s in cfg.sets]
    table = markdown_table(rows, sets, [Path(d).name for d in cfg.real_dirs])
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        slim = [{k: v for k, v in r.items() if k != "outputs"} for r in rows]
        json_path.write_text(json.dumps(slim, indent=2, default=float) + "\n")
    if markdown_path:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(table)
    return table
