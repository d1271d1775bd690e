"""``stream-derain eval``: PSNR/SSIM on paired image folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from ..backends import create_backend
from ..derain import resolve_model
from ..evaluate import PairSet, evaluate_set
from .common import app, handle_errors

log = logging.getLogger("stream_derain")


@app.command("eval")
@handle_errors
def eval_cmd(
    sets: list[Path] = typer.Argument(..., help="Paired folders, each with rain/ and clean/."),
    backend: str = typer.Option("auto", help="Backend that runs the model."),
    model: Optional[str] = typer.Option(None, help="Shipped model name or .onnx path."),
    predictions: Optional[Path] = typer.Option(None, help="Score these derained images instead of "
                                               "running a model (one set only)."),
    input_only: bool = typer.Option(False, "--input-only", help="Score only the rainy inputs."),
    save: Optional[Path] = typer.Option(None, help="Write derained images under SAVE/<set>/."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write all scores as JSON."),
) -> None:
    """PSNR and SSIM (Y channel and RGB) of input and output against clean images."""
    pair_sets = [PairSet.from_dir(s) for s in sets]
    results = []
    if input_only or predictions is not None:
        results = [evaluate_set(p, predictions=predictions) for p in pair_sets]
    else:
        with create_backend(backend, resolve_model(model)) as be:
            results = [evaluate_set(p, be, save_dir=save / p.name if save else None) for p in pair_sets]
    for r in results:
        out = r.get("output")
        typer.echo(f"{r['set']:<12} {r['images']:>3} images  input PSNR-Y {r['input']['psnr_y']:6.2f} "
                   f"SSIM-Y {r['input']['ssim_y']:.4f}" + (f"  output PSNR-Y {out['psnr_y']:6.2f} "
                                                        f"SSIM-Y {out['ssim_y']:.4f}" if out else ""))
    if json_out:
        json_out.write_text(json.dumps(results, indent=2) + "\n")
