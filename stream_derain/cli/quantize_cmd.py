"""``stream-derain quantize``: an INT8 model by post-training quantization, checked
against FP32 and recorded in the manifest (:func:`stream_derain.quantize.quantize_model`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from .common import app, handle_errors

log = logging.getLogger("stream_derain")


@app.command("quantize")
@handle_errors
def quantize_cmd(
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Shipped model name or path to an FP32 .onnx file (default: the default "
        "model)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Folder to write the INT8 file and its manifest entry to (default: beside "
        "the FP32 file, in its manifest); another folder gets copies of the FP32/FP16 files."),
    windows: int = typer.Option(200, min=8, help="Calibration windows (640x360 by default)."),
    size: str = typer.Option("640x360", help="Calibration window size, WIDTHxHEIGHT."),
    data: Optional[Path] = typer.Option(None, help="Research data root (default: ../shared/data or "
                                        "STREAM_DERAIN_DATA)."),
    backend: Optional[list[str]] = typer.Option(
        None, "--backend", help="Check on these backends (openvino, onnxruntime; repeatable; default: "
        "both)."),
    ignore: Optional[list[str]] = typer.Option(
        None, "--ignore", help="ONNX node name to keep in floating point, repeatable (default: the output "
        "convolutions and the nodes after them)."),
    preset: str = typer.Option("mixed", help="NNCF preset: mixed or performance."),
    bias_correction: str = typer.Option("fast", help="NNCF bias correction: fast, full or none."),
    accuracy_db: Optional[float] = typer.Option(
        None, "--accuracy-db", metavar="DB", help="Accuracy control: keep more layers in floating "
        "point until the worst quarter of held-out calibration windows agrees with FP32 at this PSNR-Y "
        "(e.g. 48)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Check against FP32 on the dev frames "
                               "(without: recorded unchecked, and auto never chooses it)."),
    video_step: int = typer.Option(2, min=1, help="Every N-th dev video frame is checked."),
    seed: int = typer.Option(29, help="Calibration seed."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the record (settings, per-set "
                                             "figures, verdicts) as JSON."),
) -> None:
    """Quantize a model to INT8 (NNCF), check it against FP32 and record it in the manifest."""
    from ..backends.options import parse_size
    from ..devsets import DATA_ROOT
    from ..quantize import QuantizeSettings, quantize_model

    unknown = [b for b in backend or () if b not in ("openvino", "onnxruntime")]
    if unknown:
        raise ConfigError(f"int8 runs on openvino or onnxruntime, not {unknown[0]}")
    settings = QuantizeSettings(windows=windows, size=parse_size(size), seed=seed,
                                ignored=tuple(ignore) if ignore else None, preset=preset,
                                bias_correction=bias_correction, accuracy_db=accuracy_db)
    result = quantize_model(model, out, settings, data or DATA_ROOT,
                            tuple(backend) if backend else ("openvino", "onnxruntime"), check=check,
                            dev_video_step=video_step)
    typer.echo(f"{result.path} (recorded in {result.manifest})")
    for name, c in result.record.get("checks", {}).items():
        typer.echo(f"{name}: {'passed' if c['passed'] else 'FAILED'} the gate: worst set "
                   f"{c['min_agreement_db']} dB vs fp32 (mean {c['mean_agreement_db']}), worst dev-set "
                   f"change {c['max_abs_delta_db']} dB")
        for failure in c["failures"]:
            typer.echo(f"  {failure}")
    if not check:
        typer.echo("not checked: auto will not choose it (run again with --check)")
    if json_path:
        json_path.write_text(json.dumps(result.record, indent=2) + "\n")
        log.info("wrote %s", json_path)
