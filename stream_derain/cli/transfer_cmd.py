"""``stream-derain train recognition|reconstruction|distill|finetune``: the task-transfer
recipe, one resumable stage per command (each resumes from its ``out_dir/last.pt``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import ConfigError, require
from .common import handle_errors
from .train_cmd import train_app

log = logging.getLogger("stream_derain")

CONFIG = typer.Option(None, help="JSON or TOML file with the stage's config keys.")
OUT_DIR = typer.Option(None, help="Run folder (checkpoints; resumes from last.pt).")
STEPS = typer.Option(None, help="Total optimisation steps.")
STOP_AT = typer.Option(None, help="End this invocation after this step (checkpointed).")
THREADS = typer.Option(None, help="torch CPU threads.")
DEVICE = typer.Option(None, help="auto, cpu or cuda.")


def _run(stage: str, config: Optional[Path], overrides: dict[str, Any]) -> None:
    require("torch", "train")
    from ..train import distill, finetune, teachers
    from ..train.config import load_config

    stages = {
        "recognition": (teachers.RecognitionTrainConfig, teachers.train_recognition),
        "reconstruction": (teachers.ReconstructionTrainConfig, teachers.train_reconstruction),
        "distill": (distill.DistillConfig, distill.train_distill),
        "finetune": (finetune.FinetuneConfig, finetune.train_finetune),
    }
    cls, train = stages[stage]
    path = train(load_config(config, overrides, cls=cls))
    log.info("done: %s", path)


@train_app.command("recognition")
@handle_errors
def recognition_cmd(config: Optional[Path] = CONFIG, out_dir: Optional[str] = OUT_DIR,
                    steps: Optional[int] = STEPS, stop_at: Optional[int] = STOP_AT,
                    threads: Optional[int] = THREADS, device: Optional[str] = DEVICE) -> None:
    """Recognition teacher: real rainy vs real rain-free crops; reports held-out accuracy."""
    _run("recognition", config, {"out_dir": out_dir, "steps": steps, "stop_at": stop_at,
                                 "threads": threads, "device": device})


@train_app.command("reconstruction")
@handle_errors
def reconstruction_cmd(config: Optional[Path] = CONFIG, out_dir: Optional[str] = OUT_DIR,
                       steps: Optional[int] = STEPS, stop_at: Optional[int] = STOP_AT,
                       threads: Optional[int] = THREADS, device: Optional[str] = DEVICE) -> None:
    """Reconstruction teacher: clean photos restored from veiled, low-contrast, blurred ones."""
    _run("reconstruction", config, {"out_dir": out_dir, "steps": steps, "stop_at": stop_at,
                                    "threads": threads, "device": device})


@train_app.command("distill")
@handle_errors
def distill_cmd(config: Optional[Path] = CONFIG, out_dir: Optional[str] = OUT_DIR,
                steps: Optional[int] = STEPS, stop_at: Optional[int] = STOP_AT,
                threads: Optional[int] = THREADS, device: Optional[str] = DEVICE,
                recognition: Optional[str] = typer.Option(None, help="Recognition teacher checkpoint."),
                reconstruction: Optional[str] = typer.Option(None, help="Reconstruction teacher checkpoint.")
                ) -> None:
    """Distil both teachers into the student (feature adapters + output matching)."""
    _run("distill", config, {"out_dir": out_dir, "steps": steps, "stop_at": stop_at, "threads": threads,
                             "device": device, "recognition": recognition, "reconstruction": reconstruction})


@train_app.command("finetune")
@handle_errors
def finetune_cmd(config: Optional[Path] = CONFIG, out_dir: Optional[str] = OUT_DIR,
                 steps: Optional[int] = STEPS, stop_at: Optional[int] = STOP_AT,
                 threads: Optional[int] = THREADS, device: Optional[str] = DEVICE,
                 init: Optional[str] = typer.Option(None, help="Student checkpoint to start from."),
                 contrastive_weight: Optional[float] = typer.Option(
                     None, help="Dual contrastive term (0 = off)."),
                 semi_weight: Optional[float] = typer.Option(
                     None, help="Semi-supervised real-rain term (0 = off).")
                 ) -> None:
    """Fine-tune the student on the fixed few-pair set (+ contrastive / semi-supervised terms)."""
    _run("finetune", config, {"out_dir": out_dir, "steps": steps, "stop_at": stop_at, "threads": threads,
                              "device": device, "init": init, "contrastive_weight": contrastive_weight,
                              "semi_weight": semi_weight})


@train_app.command("ablation")
@handle_errors
def ablation_cmd(
    rows: list[str] = typer.Option(..., "--row", help="NAME=CHECKPOINT, one per table row, in order."),
    recognition: str = typer.Option("runs/transfer/recognition/last.pt",
                                    help="Recognition teacher (rain score)."),
    judge: str = typer.Option("", help="A second recognition model no row trained against (judge score)."),
    markdown: Optional[Path] = typer.Option(None, help="Write the table as Markdown."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write all numbers as JSON."),
    picture: Optional[Path] = typer.Option(None, help="Side-by-side picture of held-out real frames."),
    compare: Optional[str] = typer.Option(None, help="Rows in the picture, comma-separated "
                                          "(default: input, first and last row)."),
) -> None:
    """Evaluate student checkpoints on the dev sets and held-out real frames: the ablation table."""
    require("torch", "train")
    from ..train import ablation

    pairs = [r.split("=", 1) for r in rows]
    if any(len(p) != 2 or not p[0] for p in pairs):
        raise ConfigError("--row takes NAME=CHECKPOINT")
    cfg = ablation.AblationConfig(rows=tuple((n, c) for n, c in pairs), recognition=recognition,
                                  judge=judge)
    results = ablation.run_ablation(cfg)
    typer.echo(ablation.write_reports(results, cfg, json_out, markdown))
    if picture:
        names = compare.split(",") if compare else ["input", pairs[0][0], pairs[-1][0]]
        ablation.side_by_side(results, names, picture)
        typer.echo(f"picture: {picture}")
