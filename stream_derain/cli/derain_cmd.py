"""``stream-derain derain``: video files, images, folders; one or several at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import typer

from ..batch import (
    BatchResult,
    Job,
    JobResult,
    LocalRunner,
    job_config,
    make_folders,
    plan_jobs,
    remove_empty,
    run_jobs,
)
from ..derain import DerainConfig, derain
from ..engine_spec import EngineSpec
from ..errors import ConfigError
from ..io import images
from ..io.encode import check_options
from ..io.video import EncodeOptions
from .common import (
    ENCODE_PANEL,
    IO_PANEL,
    app,
    handle_errors,
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
    sigterm_as_interrupt()
    if ray or ray_address:
        from .ray_cmd import run_on_ray

        return run_on_ray(jobs, template, ray_address, skip_existing, json_out, quiet)
    if len(jobs) == 1 and len(inputs) == 1 and not Path(inputs[0]).is_dir():
        _single(jobs[0], template, quiet, folder_form)
    else:
        _batch(jobs, template, quiet)


def _single(job: Job, template: DerainConfig, quiet: bool, make_folder: bool) -> None:
    """One input file: its errors are the command's (``Error: ...``, exit 1)."""
    if job.skip:
        log.info("skipped %s: %s", job.input, job.skip)
        return
    cfg = job_config(template, job)  # a redo (--skip-existing, incomplete output) may replace it
    created = make_folders([job]) if make_folder else []
    try:
        with progress_reporter(f"derain {job.input.name}", quiet) as progress:
            out, result = derain(cfg, progress)
    finally:
        remove_empty(created)
    if result.kind == "video":
        if result.interrupted:
            log.warning("Interrupted: wrote %d frames to %s (finalised and playable)", result.frames, out)
            raise typer.Exit(130)
        log.info("wrote %s: %d frames in %.1fs (%.1f fps)", out, result.frames, result.seconds, result.fps)
        for stage in result.stages:
            log.debug("stage %s", stage.as_dict())
    else:
        log.info("wrote %d image(s) to %s", result.frames, out)


def _batch(jobs: list[Job], template: DerainConfig, quiet: bool) -> None:
    """Several jobs: a line per file, a summary; exit 1 if any failed, 130 if stopped."""
    if not jobs:
        raise ConfigError("nothing to do: no videos or images in the inputs")
    total = len(jobs)
    position = {job: i + 1 for i, job in enumerate(jobs)}

    def progress_for(job: Job):  # noqa: ANN202 - a context manager
        return progress_reporter(f"[{position[job]}/{total}] {job.input.name}", quiet)

    runner = LocalRunner(template, progress=progress_for)
    try:
        batch = run_jobs(jobs, template, run_one=runner, on_result=_print_result)
    finally:
        runner.close()
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
