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
from ..engine_spec import EngineSpec
from ..errors import ConfigError, InputError, StreamDerainError
from .common import MODEL_PANEL, app, handle_errors
from .engine_options import engine_options

log = logging.getLogger("stream_derain")
MEASURE_PANEL, E2E_PANEL, REPORTS_PANEL = "What to measure", "End to end", "Reports"


def _measure(default: object, *decls: str, **kw: object) -> object:
    return typer.Option(default, *decls, rich_help_panel=MEASURE_PANEL, **kw)


def _report(default: object, *decls: str, **kw: object) -> object:
    return typer.Option(default, *decls, rich_help_panel=REPORTS_PANEL, **kw)


# bench's own options, its grid among them (the engine's are shared: .engine_options)
MODE = _measure("all", "--mode", help="engine (synthetic frames), e2e (a real file) or all.")
RESOLUTION = _measure(None, "--resolution", "-r",
                      help="WIDTHxHEIGHT, repeatable (default: 640x360, 1280x720, 1920x1080).")
BATCH = _measure(None, "--batch", "-b", min=1,
                 help="Batch size, repeatable (default: 1); e2e uses the first.")
BACKEND = typer.Option(None, "--backend", rich_help_panel=MODEL_PANEL,
                       help="onnxruntime, openvino, torch, tensorrt; repeatable (default: every installed "
                            "one).")
PRECISION = typer.Option(None, "--precision", "-p", rich_help_panel=MODEL_PANEL,
                         help="auto, fp32, bf16, fp16, int8; repeatable (default: auto, as derain).")
WARMUP = _measure(2, "--warmup", min=0, help="Untimed calls before timing each case.")
ITERS = _measure(0, "--iters", min=0, help="Timed calls per case (0: adaptive, see --budget).")
BUDGET = _measure(3.0, "--budget", min=0.1, help="Seconds of timed calls per case when --iters is 0.")
INPUT = typer.Option(None, "--input", "-i", rich_help_panel=E2E_PANEL,
                     help="Video for e2e mode (default: the 360p sample).")
FRAMES = typer.Option(125, "--frames", min=1, rich_help_panel=E2E_PANEL,
                      help="Frames of the input used in e2e mode (125: the sample).")
PRESET = typer.Option(None, "--preset", rich_help_panel=E2E_PANEL,
                      help="e2e: encoder preset (default: derain's, x264 veryfast).")
VARIANT = _measure(None, "--variant", metavar="SPEC",
                   help="Measure this NAME=BACKEND/PRECISION (optionally ,preset=P ,model=M) instead of "
                        "--backend x -p; repeatable, the first is the baseline (docs/bench.md).")
ROUNDS = _measure(1, "--rounds", min=1, help="Take the variants in turn this many times, all active at once "
                  "(fairer ratios on a shared machine; e2e keeps each one's best round).")
JSON_PATH = _report(None, "--json", help="Write the full report as JSON.")
CHART = _report(None, "--chart", help="Write a PNG bar chart of engine fps.")
MARKDOWN = _report(None, "--markdown",
                   help="Write the README performance section (Markdown) of this run or the "
                        "--from-json ones.")
FROM_JSON = _report(None, "--from-json",
                    help="Measure nothing: render saved --json reports (repeatable, e.g. "
                    "a CPU and a GPU run) as tables, --markdown and --chart.")
WIDE = _report(False, "--wide",
               help="Every column and the per-stage tables (a terminal shows the main columns; "
               "piped output and --json have all).")


@app.command("bench")
@handle_errors
@engine_options(without=("backend", "precision", "batch", "window"))
def bench_cmd(mode: str = MODE, resolution: Optional[list[str]] = RESOLUTION,
              batch: Optional[list[int]] = BATCH,
              backend: Optional[list[str]] = BACKEND, precision: Optional[list[str]] = PRECISION,
              engine: EngineSpec = EngineSpec(), warmup: int = WARMUP, iters: int = ITERS,
              budget: float = BUDGET,
              input: Optional[Path] = INPUT, frames: int = FRAMES, preset: Optional[str] = PRESET,
              variant: Optional[list[str]] = VARIANT, rounds: int = ROUNDS,
              json_path: Optional[Path] = JSON_PATH,
              chart: Optional[Path] = CHART, markdown: Optional[Path] = MARKDOWN,
              from_json: Optional[list[Path]] = FROM_JSON, wide: bool = WIDE) -> None:
    """Measure throughput: engine only, end to end with per-stage fps, backends side by side."""
    from rich.console import Console

    from ..bench.report import rich_report
    from ..bench.schema import write_json

    # piped output (logs, CI) gets wide tables instead of rich's 80-column fallback
    console = Console(width=None if sys.stdout.isatty() else 200)
    wide = wide or not sys.stdout.isatty()  # logs and CI keep every column
    if from_json:
        if json_path:
            raise ConfigError("--json writes a new measurement; with --from-json nothing is measured")
        _outputs([_show_saved(path, console, wide) for path in from_json], markdown, chart)
        return
    if variant and (backend or precision):
        raise ConfigError("--variant names its own backend and precision; leave out --backend and -p")
    unknown = [b for b in backend or () if b not in BACKENDS or b == "auto"]
    if unknown:
        raise ConfigError(f"unknown backend {unknown[0]!r}; choose from "
                          f"{', '.join(b for b in BACKENDS if b != 'auto')}")
    cfg = BenchConfig(
        mode=mode, engine=engine, resolutions=tuple(parse_resolution(r) for r in resolution or ())
        or DEFAULT_RESOLUTIONS, batches=tuple(batch or ()), backends=tuple(backend or ()),
        precisions=tuple(precision or ()), warmup=warmup, iters=iters, budget_s=budget, input=input,
        frames=frames, preset=preset, rounds=rounds, variants=tuple(parse_variant(v) for v in variant or ()))
    report = run_bench(cfg)
    report["command"] = shlex.join(["stream-derain", *sys.argv[1:]]) if "bench" in sys.argv[1:] else None
    console.print(rich_report(report, wide))
    if json_path:
        write_json(report, json_path)
        log.info("wrote %s", json_path)
    _outputs([report], markdown, chart)
    _fail_if_nothing_ran(report)


def _show_saved(path: Path, console: object, wide: bool) -> dict:
    """A saved --json report, checked and printed."""
    from ..bench.report import rich_report
    from ..bench.schema import read_json, validate_report

    if not path.is_file():
        raise InputError(f"report not found: {path}")
    report = read_json(path)
    problems = validate_report(report)
    if problems:
        raise InputError(f"{path} is not a bench report: {'; '.join(problems[:5])}")
    console.print(rich_report(report, wide))  # type: ignore[attr-defined]
    return report


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
