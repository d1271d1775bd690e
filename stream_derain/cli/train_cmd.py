"""``stream-derain train ...`` and ``stream-derain export``: training needs the [train] extra."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from ..errors import require
from .common import app, handle_errors

log = logging.getLogger("stream_derain")
train_app = typer.Typer(no_args_is_help=True, help="Train the student (needs the \\[train] extra).")
app.add_typer(train_app, name="train")
STOP_AT_HELP = "End this invocation after this step (checkpointed)."


@train_app.command("supervised")
@handle_errors
def supervised_cmd(
    config: Optional[Path] = typer.Option(None, help="JSON or TOML file with TrainConfig keys."),
    out_dir: Optional[str] = typer.Option(None, help="Run folder (checkpoints; resumes from last.pt)."),
    steps: Optional[int] = typer.Option(None, help="Total optimisation steps."),
    stop_at: Optional[int] = typer.Option(None, help=STOP_AT_HELP),
    batch_size: Optional[int] = typer.Option(None),
    crop: Optional[int] = typer.Option(None),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
) -> None:
    """Baseline: supervised on synthetic rain rendered over clean photos."""
    require("torch", "train")
    from ..train.config import load_config
    from ..train.supervised import train_supervised

    cfg = load_config(config, {"out_dir": out_dir, "steps": steps, "stop_at": stop_at,
                                "batch_size": batch_size, "crop": crop, "threads": threads, "device": device})
    path = train_supervised(cfg)
    log.info("done: %s", path)


@train_app.command("temporal")
@handle_errors
def temporal_cmd(
    config: Optional[Path] = typer.Option(None, help="JSON or TOML file with TemporalTrainConfig keys."),
    out_dir: Optional[str] = typer.Option(None, help="Run folder (checkpoints; resumes from last.pt)."),
    steps: Optional[int] = typer.Option(None, help="Total optimisation steps."),
    stop_at: Optional[int] = typer.Option(None, help=STOP_AT_HELP),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
) -> None:
    """v4: the multi-frame student on rainy video windows, grown from a single-frame one."""
    require("torch", "train")
    from ..train.config import load_config
    from ..train.temporal import TemporalTrainConfig, train_temporal

    cfg = load_config(config, {"out_dir": out_dir, "steps": steps, "stop_at": stop_at, "threads": threads,
                               "device": device}, cls=TemporalTrainConfig)
    log.info("done: %s", train_temporal(cfg))


@app.command("export")
@handle_errors
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="A training checkpoint (last.pt)."),
    out: Optional[Path] = typer.Option(None, help="Folder for the ONNX files and manifest.json "
                                       "(default: runs/export/NAME); `stream-derain ship` ships it."),
    name: str = typer.Option("derain-student", help="Model name in the manifest."),
    version: str = typer.Option("1", help="Model version string."),
    scores: Optional[Path] = typer.Option(None, help="`stream-derain eval --json` output of this model: "
                                          "its dev-set means go into the manifest."),
    recipe: Optional[Path] = typer.Option(None, help="The config file it was trained with: its chain of "
                                          "bases goes into the lineage."),
    parent_at: list[str] = typer.Option([], "--parent-at", metavar="RECORDED=NOW",
                                        help="A parent the checkpoint names by a path whose file has "
                                             "moved: where it is now (repeatable)."),
    gate_offset: float = typer.Option(0.0, help="Added to a replacement head's gate logits (> 0 opens it "
                                      "more); chosen with scripts/gate_offset.py, recorded in the lineage."),
    gate_scale: float = typer.Option(1.0, help="The gate's sharpness: its logits l become SCALE (l + "
                                     "gate offset); > 1 replaces what the head is unsure of more nearly "
                                     "wholly or not at all. Recorded in the lineage."),
    stills: Optional[str] = typer.Option(None, help="A multi-frame model's stand-in for still images: a "
                                         "single-frame model shipped beside it (e.g. derain-student-v3)."),
    align: Optional[str] = typer.Option(None, help="The flow mode inference aligns the window with, if "
                                        "not the one it was trained with (e.g. flow-chain); recorded in "
                                        "the lineage."),
) -> None:
    """Export a student (or grown teacher) checkpoint to ONNX (FP32 + FP16), check both against
    torch, and write its manifest entry with the model's lineage (never into engines/ unless
    --out says so: see `stream-derain ship`)."""
    require("torch", "train")
    from ..align import macs_note
    from ..train.publish import ExportConfig, export_checkpoint, parse_aliases, read_dev_scores

    cfg = ExportConfig(checkpoint, out, name, version, read_dev_scores(scores) if scores else {},
                       recipe, parse_aliases(parent_at), gate_offset=gate_offset, gate_scale=gate_scale,
                       stills=stills, align=align)
    entry = export_checkpoint(cfg)
    lineage = entry["lineage"]["lineage_hash"]
    typer.echo(f"exported {name} v{version}: {entry['macs_per_pixel']:.0f} MACs/pixel{macs_note(entry)}, "
               f"{entry['parameters']} parameters, lineage {lineage} -> {cfg.folder}")


@app.command("ship")
@handle_errors
def ship_cmd(
    export_dir: Path = typer.Argument(..., help="A folder `stream-derain export` wrote (runs/export/NAME)."),
    name: Optional[str] = typer.Option(None, help="Model to ship (default: the export's default)."),
    to: Optional[Path] = typer.Option(None, help="Shipped models folder (default: the one the package "
                                      "reads, engines/ in a checkout)."),
    replace: bool = typer.Option(False, "--replace", help="Replace a model of the same name there."),
    default: bool = typer.Option(False, "--default", help="Make it the default model."),
    live_default: bool = typer.Option(False, "--live-default", help="Make it the model live streams run "
                                      "when none is named (where the default may not keep up)."),
) -> None:
    """Ship an exported model: copy its files into engines/ and enter it in the manifest.
    Refuses to replace a shipped model without --replace, and says what it replaces."""
    from ..catalog import models_dir
    from ..model.ship import ship

    done = ship(export_dir, to if to is not None else models_dir(), name, replace, default, live_default)
    typer.echo(done.describe())
