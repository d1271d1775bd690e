"""``stream-derain bench``: engine-only and end-to-end benchmarks, tables, JSON, chart."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from ..bench import BenchConfig, parse_resolution, run_bench
from ..bench.config import DEFAULT_RESOLUTIONS
from .common import app, handle_errors

log = logging.getLogger("stream_derain")


@app.command("bench")
@handle_errors
def bench_cmd(
    mode: str = typer.Option("all", help="engine (synthetic frames), e2e (a real file) or all."),
    resolution: Optional[list[str]] = typer.Option(
        None, "--resolution", "-r", help="WIDTHxHEIGHT, repeatable (default: 640x360, 1280x720, 1920x1080)."),
    batch: Optional[list[int]] = typer.Option(
        None, "--batch", "-b", min=1, help="Batch size, repeatable (default: 1); e2e uses the first."),
    backend: Optional[list[str]] = typer.Option(
        None, "--backend", help="onnxruntime, torch, tensorrt; repeatable (default: every installed one)."),
    precision: Optional[list[str]] = typer.Option(None, "--precision", "-p",
                                                  help="fp32 or fp16, repeatable (default: fp32)."),
    model: Optional[str] = typer.Option(None, help="Shipped model name or path to an .onnx file."),
    warmup: int = typer.Option(2, min=0, help="Untimed calls before timing each case."),
    iters: int = typer.Option(0, min=0, help="Timed calls per case (0: adaptive, see --budget)."),
    budget: float = typer.Option(3.0, min=0.1, help="Seconds of timed calls per case when --iters is 0."),
    input: Optional[Path] = typer.Option(
        None, "--input", "-i", help="Video for e2e mode (default: samples/rainy_cafe_table_360p.mp4)."),
    frames: int = typer.Option(48, min=1, help="Frames of the input used in e2e mode."),
    smooth: bool = typer.Option(True, "--smooth/--no-smooth", help="Include the temporal smoother in e2e."),
    threads: int = typer.Option(0, min=0, help="CPU threads for onnxruntime (0: all cores)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the full report as JSON."),
    chart: Optional[Path] = typer.Option(None, help="Write a PNG bar chart of engine fps."),
    markdown: Optional[Path] = typer.Option(None, help="Write the README performance section (Markdown)."),
) -> None:
    """Measure throughput: engine only, end to end with per-stage fps, backends side by side."""
    from rich.console import Console

    from ..bench.chart import write_chart
    from ..bench.markdown import to_markdown
    from ..bench.report import rich_report, write_json

    resolutions = tuple(parse_resolution(r) for r in resolution) if resolution else DEFAULT_RESOLUTIONS
    cfg = BenchConfig(
        mode=mode, resolutions=resolutions,
        batches=tuple(batch) if batch else (1,), backends=tuple(backend or ()),
        precisions=tuple(precision) if precision else ("fp32",), model=model, warmup=warmup, iters=iters,
        budget_s=budget, input=input, frames=frames, smooth=smooth, threads=threads)
    report = run_bench(cfg)
    # piped output (logs, CI) gets a wide table instead of rich's 80-column fallback
    Console(width=None if sys.stdout.isatty() else 160).print(rich_report(report))
    if json_path:
        write_json(report, json_path)
        log.info("wrote %s", json_path)
    if markdown:
        markdown.write_text(to_markdown(report))
        log.info("wrote %s", markdown)
    if chart:
        write_chart(report, chart)
        log.info("wrote %s", chart)
