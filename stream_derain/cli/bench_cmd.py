"""``stream-derain bench``: engine-only and end-to-end benchmarks, tables, JSON, chart."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from ..backends import BACKENDS
from ..bench import BenchConfig, parse_resolution, run_bench
from ..bench.config import DEFAULT_RESOLUTIONS, parse_variant
from ..errors import ConfigError, InputError, StreamDerainError
from ..smooth.core import DEFAULT_STRENGTH
from .common import (
    DEVICE,
    MODEL_PANEL,
    TRT_MAX_BATCH,
    TRT_MAX_SIZE,
    TRT_WORKSPACE,
    app,
    backend_options,
    handle_errors,
)

log = logging.getLogger("stream_derain")
MEASURE_PANEL, E2E_PANEL, REPORTS_PANEL = "What to measure", "End to end", "Reports"


@app.command("bench")
@handle_errors
def bench_cmd(
    mode: str = typer.Option("all", help="engine (synthetic frames), e2e (a real file) or all.",
        rich_help_panel=MEASURE_PANEL),
    resolution: Optional[list[str]] = typer.Option(
        None, "--resolution", "-r", help="WIDTHxHEIGHT, repeatable (default: 640x360, 1280x720, 1920x1080).",
        rich_help_panel=MEASURE_PANEL),
    batch: Optional[list[int]] = typer.Option(
        None, "--batch", "-b", min=1, help="Batch size, repeatable (default: 1); e2e uses the first.",
        rich_help_panel=MEASURE_PANEL),
    backend: Optional[list[str]] = typer.Option(
        None, "--backend",
        help="onnxruntime, openvino, torch, tensorrt; repeatable (default: every installed one).",
        rich_help_panel=MODEL_PANEL),
    precision: Optional[list[str]] = typer.Option(None, "--precision", "-p",
                                                  help="auto, fp32, bf16, fp16, int8; repeatable "
                                                       "(default: auto, as derain).",
        rich_help_panel=MODEL_PANEL),
    model: Optional[str] = typer.Option(None, help="Shipped model name or path to an .onnx file.",
        rich_help_panel=MODEL_PANEL),
    warmup: int = typer.Option(2, min=0, help="Untimed calls before timing each case.",
        rich_help_panel=MEASURE_PANEL),
    iters: int = typer.Option(0, min=0, help="Timed calls per case (0: adaptive, see --budget).",
        rich_help_panel=MEASURE_PANEL),
    budget: float = typer.Option(3.0, min=0.1, help="Seconds of timed calls per case when --iters is 0.",
        rich_help_panel=MEASURE_PANEL),
    input: Optional[Path] = typer.Option(
        None, "--input", "-i", help="Video for e2e mode (default: the 360p sample).",
        rich_help_panel=E2E_PANEL),
    frames: int = typer.Option(125, min=1, help="Frames of the input used in e2e mode (125: the sample).",
        rich_help_panel=E2E_PANEL),
    smooth: bool = typer.Option(True, "--smooth/--no-smooth", help="Include the temporal smoother in e2e.",
        rich_help_panel=E2E_PANEL),
    smooth_strength: float = typer.Option(DEFAULT_STRENGTH, min=0.0, max=1.0, help="Smoother strength.",
        rich_help_panel=E2E_PANEL),
    device: Optional[str] = DEVICE,
    trt_max_size: Optional[str] = TRT_MAX_SIZE,
    trt_max_batch: Optional[int] = TRT_MAX_BATCH,
    trt_workspace: Optional[int] = TRT_WORKSPACE,
    threads: int = typer.Option(0, min=0, help="CPU threads for onnxruntime (0: all cores).",
        rich_help_panel=MODEL_PANEL),
    device_frames: Optional[bool] = typer.Option(
        None, "--device-frames/--host-frames",
        help="e2e: keep frames on the GPU between stages (default: for CUDA backends that can).",
        rich_help_panel=E2E_PANEL),
    preset: Optional[str] = typer.Option(None, help="e2e: encoder preset (default: derain's, x264 "
                                         "veryfast).",
        rich_help_panel=E2E_PANEL),
    variant: Optional[list[str]] = typer.Option(
        None, "--variant", metavar="SPEC",
        help="Measure this NAME=BACKEND/PRECISION (optionally ,preset=P ,model=M) instead of "
             "--backend x -p; repeatable, the first is the baseline (docs/bench.md).",
        rich_help_panel=MEASURE_PANEL),
    rounds: int = typer.Option(1, min=1, help="Take the variants in turn this many times, all active at "
                               "once (fairer ratios on a shared machine; e2e keeps each one's best round).",
        rich_help_panel=MEASURE_PANEL),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the full report as JSON.",
        rich_help_panel=REPORTS_PANEL),
    chart: Optional[Path] = typer.Option(None, help="Write a PNG bar chart of engine fps.",
        rich_help_panel=REPORTS_PANEL),
    markdown: Optional[Path] = typer.Option(
        None, help="Write the README performance section (Markdown) of this run or the --from-json ones.",
        rich_help_panel=REPORTS_PANEL),
    from_json: Optional[list[Path]] = typer.Option(
        None, "--from-json", help="Measure nothing: render saved --json reports (repeatable, e.g. a CPU and "
        "a GPU run) as tables, --markdown and --chart.",
        rich_help_panel=REPORTS_PANEL),
    wide: bool = typer.Option(False, "--wide", rich_help_panel=REPORTS_PANEL,
                              help="Every column and the per-stage tables (a terminal shows the main "
                                   "columns; piped output and --json have all)."),
) -> None:
    """Measure throughput: engine only, end to end with per-stage fps, backends side by side."""
    from rich.console import Console

    from ..bench.report import rich_report
    from ..bench.schema import read_json, validate_report, write_json

    # piped output (logs, CI) gets wide tables instead of rich's 80-column fallback
    console = Console(width=None if sys.stdout.isatty() else 200)
    wide = wide or not sys.stdout.isatty()  # logs and CI keep every column
    if from_json:
        if json_path:
            raise ConfigError("--json writes a new measurement; with --from-json nothing is measured")
        reports = []
        for path in from_json:
            if not path.is_file():
                raise InputError(f"report not found: {path}")
            report = read_json(path)
            problems = validate_report(report)
            if problems:
                raise InputError(f"{path} is not a bench report: {'; '.join(problems[:5])}")
            reports.append(report)
            console.print(rich_report(report, wide))
        _outputs(reports, markdown, chart)
        return

    if variant and (backend or precision):
        raise ConfigError("--variant names its own backend and precision; leave out --backend and -p")
    unknown = [b for b in backend or () if b not in BACKENDS or b == "auto"]
    if unknown:
        raise ConfigError(f"unknown backend {unknown[0]!r}; choose from "
                          f"{', '.join(b for b in BACKENDS if b != 'auto')}")
    resolutions = tuple(parse_resolution(r) for r in resolution) if resolution else DEFAULT_RESOLUTIONS
    cfg = BenchConfig(
        mode=mode, resolutions=resolutions,
        batches=tuple(batch) if batch else (1,), backends=tuple(backend or ()),
        precisions=tuple(precision) if precision else ("auto",), model=model, warmup=warmup, iters=iters,
        budget_s=budget, input=input, frames=frames, smooth=smooth, smooth_strength=smooth_strength,
        threads=threads, device_frames=device_frames, preset=preset,
        rounds=rounds, variants=tuple(parse_variant(v) for v in variant or ()),
        backend_options=backend_options(device, trt_max_size, trt_max_batch, trt_workspace))
    report = run_bench(cfg)
    report["command"] = shlex.join(["stream-derain", *sys.argv[1:]]) if "bench" in sys.argv[1:] else None
    console.print(rich_report(report, wide))
    if json_path:
        write_json(report, json_path)
        log.info("wrote %s", json_path)
    _outputs([report], markdown, chart)
    _fail_if_nothing_ran(report)


def _fail_if_nothing_ran(report: dict) -> None:
    """Exit 0 means something was measured: when every case failed (e.g. an e2e input
    with no frames), the report is still written and shown, then ``Error:`` and exit 1."""
    cases = [*report.get("engine", []), *report.get("e2e", [])]
    failed = [c for c in cases if c.get("status") == "failed"]
    if failed and len(failed) == len(cases):
        reason = failed[0].get("reason") or "no reason given"
        raise StreamDerainError(f"every case failed; the first: {reason}")


def _outputs(reports: list[dict], markdown: Optional[Path], chart: Optional[Path]) -> None:
    """--markdown (one section for all reports) and --chart (one PNG per report)."""
    from ..bench.chart import write_chart
    from ..bench.markdown import section_markdown

    if markdown:
        markdown.write_text(section_markdown(reports))
        log.info("wrote %s", markdown)
    if chart:
        # a chart per report with engine rows (an e2e-only report has nothing to chart)
        charted = [r for r in reports if r["engine"]] or reports[:1]
        if len(charted) == 1:
            write_chart(charted[0], chart)
            log.info("wrote %s", chart)
            return
        for i, report in enumerate(charted, 1):
            path = chart.with_name(f"{chart.stem}-{i}{chart.suffix or '.png'}")
            write_chart(report, path)
            log.info("wrote %s", path)
