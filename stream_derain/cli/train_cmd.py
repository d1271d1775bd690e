"""``stream-derain train ...`` and ``stream-derain export``: training needs the [train] extra."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError, require
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
    out: Path = typer.Option(Path("engines"), help="Folder for the ONNX files and manifest.json."),
    name: str = typer.Option("derain-student", help="Model name in the manifest."),
    version: str = typer.Option("1", help="Model version string."),
    scores: Optional[Path] = typer.Option(None, help="`stream-derain eval --json` output of this model: "
                                          "its dev-set means go into the manifest."),
) -> None:
    """Export a student (or grown teacher) checkpoint to ONNX (FP32 + FP16), check both against
    torch, update the manifest."""
    require("torch", "train")
    from ..model.export import export_model
    from ..train.checkpoint import read_checkpoint
    from ..train.supervised import load_derainer
    from ..train.temporal import ARCH as TEMPORAL
    from ..train.temporal import load_temporal

    load = load_temporal if read_checkpoint(checkpoint).get("arch") == TEMPORAL else load_derainer
    model, ckpt = load(checkpoint)
    extra = {"trained_steps": ckpt["step"], "checkpoint_arch": ckpt["arch"],
             **({"align": ckpt["train_cfg"].get("align", "none")} if ckpt["arch"] == TEMPORAL else {}),
             "training": {"steps": ckpt["step"], "train_seconds": ckpt.get("extra", {}).get("train_seconds"),
                          "config": ckpt.get("train_cfg", {})}}
    if scores is not None:
        extra["dev_scores"] = dev_scores(scores)
    entry = export_model(model, out, name, version, extra)
    typer.echo(f"exported {name} v{version}: {entry['macs_per_pixel']:.0f} MACs/pixel, "
               f"{entry['parameters']} parameters -> {out}")


def dev_scores(path: Path) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM (Y), brightness bias and detail ratio of input and output per set,
    from an eval JSON report (bias and detail where the report has them)."""
    try:
        results = json.loads(path.read_text())
        return {r["set"]: {f"{side}_{k}": r[side][k] for side in ("input", "output")
                           for k in ("psnr_y", "ssim_y", "bias", "detail") if k in r[side]}
                for r in results}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read dev-set scores from {path}: {exc}") from None
