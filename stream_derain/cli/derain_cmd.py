"""``stream-derain derain``: video files, images, folders; one or several at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import typer

from ..derain import DerainConfig
from ..engine_spec import EngineSpec
from ..errors import ConfigError, StreamDerainError
from ..io import images
from ..io.encode_options import check_options
from ..io.video import EncodeOptions
from ..jobs import BatchResult, Job, JobResult, LocalRunner, plan_jobs, run_jobs
from ..pipeline import RunControl
from .common import (
    ENCODE_PANEL,
    IO_PANEL,
    app,
    handle_errors,
    interrupted,
    missing_input,
    parse_bitrate,
    setup_logging,
    sigterm_as_interrupt,
)
from .engine_options import engine_options
from .progress import progress_reporter

log = logging.getLogger("stream_derain")
RAY_PANEL = "Many files on Ray"

# derain's own options (the engine's are shared: .engine_options)
INPUTS = typer.Argument(None, metavar="INPUT", show_default=False,
                        help="Video files, images and/or folders of them.")
OUTPUT = typer.Option(None, "--output", "-o", show_default=False, metavar="PATH", rich_help_panel=IO_PANEL,
                      help="Output file, or folder for several inputs or a folder (default: "
                           "INPUT.derained.mp4 or FOLDER_derained/ beside the input; images, .mkv, .mov, "
                           ".webm keep their extension).")
START = typer.Option(0, "--start", min=0, metavar="N", rich_help_panel=IO_PANEL, help="First frame.")
MAX_FRAMES = typer.Option(None, "--max-frames", min=1, show_default=False, metavar="N",
                          rich_help_panel=IO_PANEL,
                          help="At most this many frames.")
SS = typer.Option(0.0, "--ss", min=0.0, metavar="SEC", rich_help_panel=IO_PANEL,
                  help="Start at this time (as ffmpeg's -ss).")
DURATION = typer.Option(None, "--duration", "-t", min=0.0, show_default=False, metavar="SEC",
                        rich_help_panel=IO_PANEL, help="At most this many seconds (as ffmpeg's -t).")
OVERWRITE = typer.Option(False, "--overwrite", "-y", rich_help_panel=IO_PANEL,
                         help="Replace existing outputs.")
SKIP_EXISTING = typer.Option(False, "--skip-existing", rich_help_panel=IO_PANEL,
                             help="Skip inputs whose output is complete (redo shorter ones).")
CODEC = typer.Option("libx264", "--codec", rich_help_panel=ENCODE_PANEL,
                     help="Video encoder (libx264, libx265, libvpx-vp9 ...).")
CRF = typer.Option(18, "--crf", metavar="N", rich_help_panel=ENCODE_PANEL,
                   help="Quality (lower: better; x264/x265 0-51, VP9/AV1 0-63).")
PRESET = typer.Option(None, "--preset", show_default=False, rich_help_panel=ENCODE_PANEL,
                      help="Encoder preset (x264/x265 default: veryfast).")
BITRATE = typer.Option(None, "--bitrate", show_default=False, rich_help_panel=ENCODE_PANEL,
                       help="Target bitrate, e.g. 4M or 800k.")
PIX_FMT = typer.Option(None, "--pix-fmt", show_default=False, rich_help_panel=ENCODE_PANEL,
                       help="Pixel format (default: the source's).")
HWACCEL = typer.Option("auto", "--hwaccel", rich_help_panel=ENCODE_PANEL,
                       help="Decode on an NVIDIA GPU: auto, cuda or none.")
RAY = typer.Option(False, "--ray", rich_help_panel=RAY_PANEL,
                   help="One Ray task per file (the \\[ray] extra).")
RAY_ADDRESS = typer.Option(None, "--ray-address", show_default=False, rich_help_panel=RAY_PANEL,
                           help="Cluster to join (implies --ray): auto or ray://HEAD:10001.")
JSON_OUT = typer.Option(None, "--json", show_default=False, rich_help_panel=RAY_PANEL,
                        help="With --ray: per-file results as JSON (- for stdout).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar; warnings and errors only.")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Debug logging (and the encoder's own).")


@app.command("derain")
@handle_errors
@engine_options()
def derain_cmd(inputs: Optional[list[str]] = INPUTS, output: Optional[str] = OUTPUT, start: int = START,
               max_frames: Optional[int] = MAX_FRAMES, ss: float = SS, duration: Optional[float] = DURATION,
               overwrite: bool = OVERWRITE, skip_existing: bool = SKIP_EXISTING,
               engine: EngineSpec = EngineSpec(), codec: str = CODEC, crf: int = CRF,
               preset: Optional[str] = PRESET, bitrate: Optional[str] = BITRATE,
               pix_fmt: Optional[str] = PIX_FMT,
               hwaccel: str = HWACCEL, ray: bool = RAY, ray_address: Optional[str] = RAY_ADDRESS,
               json_out: Optional[Path] = JSON_OUT, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Remove rain from videos, images and folders of them (several inputs: a batch)."""
    if not inputs:
        missing_input("derain")
    if quiet or verbose:
        setup_logging(verbose, quiet)
    encode = EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                           bitrate=parse_bitrate(bitrate))
    check_options(encode)
    template = DerainConfig(input=Path(), engine=engine, hwaccel=hwaccel, start=start, max_frames=max_frames,
                            start_s=ss, duration_s=duration, overwrite=overwrite, encode=encode)
    folder_form = output is not None and output.endswith(("/", os.sep))  # "-o clean/": a folder
    jobs = plan_jobs(inputs, Path(output) if output else None, skip_existing=skip_existing,
                     output_is_dir=folder_form,
                     trimmed=bool(start or max_frames or ss or duration is not None))
    control = sigterm_as_interrupt()
    if ray or ray_address:
        from .ray_cmd import run_on_ray

        return run_on_ray(jobs, template, ray_address, skip_existing, json_out, quiet)
    one = len(jobs) == 1 and len(inputs) == 1 and not Path(inputs[0]).is_dir()
    batch = _run(jobs, template, quiet, control, one, make_folders=not one or folder_form)
    if one:
        _report_one(batch.results[0])
    else:
        _report_batch(batch)


def _run(jobs: list[Job], template: DerainConfig, quiet: bool, control: RunControl, one: bool,
         make_folders: bool) -> BatchResult:
    """Every input runs as a job of the plan (one file: a batch of one), with one backend
    and a progress bar per file; ``make_folders``: create missing output folders (not
    for one file named with -o, unless it ends in /)."""
    if not jobs:
        raise ConfigError("nothing to do: no videos or images in the inputs")
    position = {job: i + 1 for i, job in enumerate(jobs)}

    def progress_for(job: Job):  # noqa: ANN202 - a context manager
        label = f"derain {job.input.name}" if one else f"[{position[job]}/{len(jobs)}] {job.input.name}"
        return progress_reporter(label, quiet)

    runner = LocalRunner(template, progress=progress_for, control=control)
    try:
        return run_jobs(jobs, template, run_one=runner, on_result=None if one else _print_result,
                        control=control, create_folders=make_folders)
    finally:
        runner.close()


def _report_one(result: JobResult) -> None:
    """One input file: its error is the command's (``Error: ...``, exit 1)."""
    job = result.job
    if result.status == "skipped":
        log.info("skipped %s: %s", job.input, result.message)
    elif result.status == "failed":
        raise StreamDerainError(result.message)
    elif result.status == "interrupted" and result.message:  # before any frame: nothing written
        interrupted()
    elif result.status == "interrupted":
        log.warning("Interrupted: wrote %d frames to %s (finalised and playable)", result.frames, job.output)
        raise typer.Exit(130)
    elif images.is_image(job.input):
        log.info("wrote %d image(s) to %s", result.frames, job.output)
    else:
        fps = result.frames / result.seconds if result.seconds > 0 else 0.0
        log.info("wrote %s: %d frames in %.1fs (%.1f fps)", job.output, result.frames, result.seconds, fps)


def _report_batch(batch: BatchResult) -> None:
    """Several jobs: a summary; exit 1 if any failed, 130 if stopped."""
    _print_summary(batch)
    if batch.interrupted:
        log.warning("Interrupted: %d file(s) not started; run again with --skip-existing to resume",
                    len(batch.not_run))
        raise typer.Exit(130)
    if batch.failed:
        raise typer.Exit(1)


def _print_result(result: JobResult) -> None:
    """A line per finished file; images that went well stay quiet (a folder of them
    would print a line each), anything else is said."""
    if result.status == "done" and images.is_image(result.job.input):
        return
    typer.echo(result.line(), err=result.status == "failed")


def _print_summary(batch: BatchResult) -> None:
    """One line of counts, and a table of the files that did not finish (if any)."""
    from rich.console import Console
    from rich.table import Table

    done = [r for r in batch.results if r.status == "done"]
    folders = sorted({str(r.job.output.parent) for r in done})
    where = f" -> {folders[0]}" if len(folders) == 1 else ""
    typer.echo(f"derain: {batch.summary()}{where}")
    rest = [r for r in batch.results if r.status != "done"]
    if not rest and not batch.not_run:
        return
    table = Table(title="not finished", title_justify="left")
    for col in ("input", "status", "frames", "output / reason"):
        table.add_column(col, justify="right" if col == "frames" else "left")
    for r in rest:
        detail = str(r.job.output) if r.status == "interrupted" else r.message
        table.add_row(str(r.job.input), r.status, str(r.frames) if r.frames else "", detail)
    for job in batch.not_run:
        table.add_row(str(job.input), "not run", "", str(job.output))
    Console(width=200 if not Console().is_terminal else None).print(table)
