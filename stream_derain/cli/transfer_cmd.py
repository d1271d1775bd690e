"""``stream-derain train recognition|reconstruction|distill|finetune``: the task-transfer
recipe, one resumable stage per command (each resumes from its ``out_dir/last.pt``)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, get_type_hints

import typer

from ..errors import ConfigError, require
from .common import handle_errors
from .train_cmd import STOP_AT_HELP, train_app

log = logging.getLogger("stream_derain")

# the options every stage command has: name -> (type, typer option)
STAGE_OPTIONS: dict[str, tuple[Any, Any]] = {
    "config": (Optional[Path], typer.Option(None, help="JSON or TOML file with the stage's config keys.")),
    "out_dir": (Optional[str], typer.Option(None, help="Run folder (checkpoints; resumes from last.pt).")),
    "steps": (Optional[int], typer.Option(None, help="Total optimisation steps.")),
    "stop_at": (Optional[int], typer.Option(None, help=STOP_AT_HELP)),
    "threads": (Optional[int], typer.Option(None, help="torch CPU threads.")),
    "device": (Optional[str], typer.Option(None, help="auto, cpu or cuda.")),
}


def stage_command(stage: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A ``train <stage>`` command: the options of :data:`STAGE_OPTIONS`, then the
    decorated function's own (its parameters, all config keys of the stage), which
    override the config file's keys where given. The function's body is not run: its
    signature and docstring are the command's."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(fn).parameters.values()
        hints = get_type_hints(fn)
        params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=kind)
                  for name, (kind, opt) in STAGE_OPTIONS.items()]
        params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name]) for p in own]

        @functools.wraps(fn)
        def command(config: Optional[Path] = None, **overrides: Any) -> None:
            _run(stage, config, overrides)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return train_app.command(stage)(handle_errors(command))

    return decorate


def _run(stage: str, config: Optional[Path], overrides: dict[str, Any]) -> None:
    require("torch", "train")
    from ..train.config import load_config
    from ..train.transfer import distill, finetune, teachers

    stages = {
        "recognition": (teachers.RecognitionTrainConfig, teachers.train_recognition),
        "reconstruction": (teachers.ReconstructionTrainConfig, teachers.train_reconstruction),
        "distill": (distill.DistillConfig, distill.train_distill),
        "finetune": (finetune.FinetuneConfig, finetune.train_finetune),
    }
    cls, train = stages[stage]
    path = train(load_config(config, overrides, cls=cls))
    log.info("done: %s", path)


@stage_command("recognition")
def recognition_cmd() -> None:
    """Recognition teacher: real rainy vs real rain-free crops; reports held-out accuracy."""


@stage_command("reconstruction")
def reconstruction_cmd() -> None:
    """Reconstruction teacher: clean photos restored from veiled, low-contrast, blurred ones."""


@stage_command("distill")
def distill_cmd(recognition: Optional[str] = typer.Option(None, help="Recognition teacher checkpoint."),
                reconstruction: Optional[str] = typer.Option(None, help="Reconstruction teacher checkpoint.")
                ) -> None:
    """Distil both teachers into the student (feature adapters + output matching)."""


@stage_command("finetune")
def finetune_cmd(init: Optional[str] = typer.Option(None, help="Student checkpoint to start from."),
                 contrastive_weight: Optional[float] = typer.Option(
                     None, help="Dual contrastive term (0 = off)."),
                 semi_weight: Optional[float] = typer.Option(
                     None, help="Semi-supervised real-rain term (0 = off).")
                 ) -> None:
    """Fine-tune the student on the fixed few-pair set (+ contrastive / semi-supervised terms)."""


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
