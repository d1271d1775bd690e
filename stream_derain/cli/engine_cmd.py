"""``stream-derain build-engine``: build (or find cached) a TensorRT engine for a model.

Works without a GPU when TensorRT-RTX is installed (ahead-of-time build for chosen
compute capabilities); standard TensorRT builds on and for the local GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from ..catalog import ModelInfo
from ..errors import BackendError
from .common import app, handle_errors

log = logging.getLogger("stream_derain")


def _default_precision(model: ModelInfo, onnx: Optional[Path]) -> str:
    """fp16 for shipped models; for a user's ONNX file, the precision of that file."""
    return next(iter(model.files)) if onnx else "fp16"


@app.command("build-engine")
@handle_errors
def build_engine_cmd(
    model: Optional[str] = typer.Option(None, "--model",
                                        help="Shipped model name (default: the default model)."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="Build from this ONNX file instead."),
    precision: Optional[str] = typer.Option(
        None, help="fp16 or fp32 (default: fp16; with --onnx: the file's)."),
    height: int = typer.Option(1080, min=1, help="Largest frame height the engine takes (optimal size)."),
    width: int = typer.Option(1920, min=1, help="Largest frame width the engine takes (optimal size)."),
    max_batch: int = typer.Option(4, min=1, help="Largest batch the engine takes (optimal batch)."),
    compute_capability: Optional[str] = typer.Option(
        None, "--compute-capability", help="TensorRT-RTX target(s), e.g. 8.6 or 8.6,8.9 "
        "(default: the local GPU; without one, TensorRT-RTX's portable set)."),
    check: bool = typer.Option(False, "--check", help="Compare FP16 vs FP32 vs ONNX Runtime (PSNR)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if a cached engine matches."),
    multiple: int | None = typer.Option(None, min=1, help="With --onnx: H and W must be multiples of "
                                        "this (default: the export's manifest beside it, else 4)."),
) -> None:
    """Build a TensorRT engine (cached beside the models) and print where it is."""
    from ..backends.trt_check import check as run_check
    from ..catalog import resolve_model
    from ..trt import probe
    from ..trt.engine import build_engine

    info = resolve_model(model, onnx, multiple)
    precision = precision or _default_precision(info, onnx)
    report = build_engine(info, precision=precision, height=height, width=width, max_batch=max_batch,
                          compute_capability=compute_capability, force=force)
    what = f"built in {report.seconds:.1f} s" if report.built else "cached, reused"
    typer.echo(f"{report.path} ({what}; {report.flavour}, {report.precision}, target {report.target}, "
               f"profile {report.profile.tag})")
    if check:
        result = run_check(info, height, width, max_batch, compute_capability)
        for line in result.lines():
            typer.echo(f"check: {line}")
        if not result.ok:
            raise BackendError("engine check failed: " + "; ".join(result.failures))
    ok, why = probe.engine_support()
    if not ok:
        log.info("this engine cannot run here (%s); copy it to a machine with a supported GPU", why)
