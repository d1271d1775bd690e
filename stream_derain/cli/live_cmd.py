"""``stream-derain live``: derain a camera stream with bounded latency."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from ..io.encode import EncodeOptions
from ..live import LiveConfig, LiveStats, SourceConfig, run_live
from ..smooth.core import DEFAULT_STRENGTH
from .common import (
    DEVICE,
    ENCODE_PANEL,
    MODEL_PANEL,
    SMOOTH_PANEL,
    TRT_MAX_BATCH,
    TRT_MAX_SIZE,
    TRT_WORKSPACE,
    WINDOW,
    app,
    backend_options,
    handle_errors,
    missing_input,
    parse_bitrate,
    setup_logging,
    sigterm_as_interrupt,
)

log = logging.getLogger("stream_derain")
STREAM_PANEL, OUTPUTS_PANEL = "Stream", "Outputs"


@contextmanager
def status_reporter(quiet: bool) -> Iterator[Callable[[LiveStats], None] | None]:
    """A rich status line on a terminal; ``None`` (the library logs lines) otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console

    with Console(stderr=True).status("connecting ...") as status:
        yield lambda stats: status.update(stats.line())


@app.command("live")
@handle_errors
def live_cmd(
    url: Optional[str] = typer.Argument(None, show_default=False,
                                        help="rtsp://, http(s):// URL or a camera device (/dev/video0)."),
    transport: str = typer.Option("tcp", help="RTSP transport: tcp or udp.",
        rich_help_panel=STREAM_PANEL),
    input_format: Optional[str] = typer.Option(None, "--format", help="Input format (e.g. v4l2).",
        rich_help_panel=STREAM_PANEL),
    open_timeout: float = typer.Option(10.0, help="Seconds to wait when connecting.",
        rich_help_panel=STREAM_PANEL),
    read_timeout: float = typer.Option(5.0, help="Seconds without data before the stream counts as stalled.",
        rich_help_panel=STREAM_PANEL),
    retries: int = typer.Option(5, min=1, help="Connection attempts at start.",
        rich_help_panel=STREAM_PANEL),
    reconnect_retries: Optional[int] = typer.Option(None, min=1, help="Give up after this many failed "
                                                    "reconnects in a row (default: never).",
        rich_help_panel=STREAM_PANEL),
    backoff: float = typer.Option(0.5, help="First wait between attempts (doubles each time).",
        rich_help_panel=STREAM_PANEL),
    backoff_max: float = typer.Option(10.0, help="Longest wait between attempts.",
        rich_help_panel=STREAM_PANEL),
    push: list[str] = typer.Option([], help="Publish to rtsp://... or rtmp://... (repeatable).",
        rich_help_panel=OUTPUTS_PANEL),
    preview_port: Optional[int] = typer.Option(None, help="MJPEG preview on http://127.0.0.1:PORT/.",
        rich_help_panel=OUTPUTS_PANEL),
    record: Optional[Path] = typer.Option(None, help="Record fragmented MP4 segments into this folder.",
        rich_help_panel=OUTPUTS_PANEL),
    segment_minutes: float = typer.Option(10.0, help="Length of a recorded segment (fractions allowed).",
        rich_help_panel=OUTPUTS_PANEL),
    max_latency: float = typer.Option(1.0, help="Latency bound in seconds (older frames are dropped).",
        rich_help_panel=OUTPUTS_PANEL),
    backend: str = typer.Option("auto", help="Backend: auto, onnxruntime or torch.",
        rich_help_panel=MODEL_PANEL),
    model: Optional[str] = typer.Option(None, help="Shipped model name or path to an .onnx file.",
        rich_help_panel=MODEL_PANEL),
    precision: str = typer.Option("auto", "--precision", "-p", help="auto, fp32, bf16 or fp16 (auto: "
                                  "OpenVINO's fastest precision within 50 dB of fp32, fp32 elsewhere).",
        rich_help_panel=MODEL_PANEL),
    threads: int = typer.Option(0, min=0, help="CPU threads of the backend (0: all cores).",
        rich_help_panel=MODEL_PANEL),
    device: Optional[str] = DEVICE,
    trt_max_size: Optional[str] = TRT_MAX_SIZE,
    trt_max_batch: Optional[int] = TRT_MAX_BATCH,
    trt_workspace: Optional[int] = TRT_WORKSPACE,
    batch: int = typer.Option(1, min=1, help="Frames per inference call (at most; a batch never waits "
                              "for frames that have not arrived).",
        rich_help_panel=MODEL_PANEL),
    window: str = WINDOW,
    smooth: bool = typer.Option(True, "--smooth/--no-smooth", help="Temporal smoother.",
        rich_help_panel=SMOOTH_PANEL),
    smooth_strength: float = typer.Option(DEFAULT_STRENGTH, min=0.0, max=1.0, help="Smoother strength.",
        rich_help_panel=SMOOTH_PANEL),
    codec: str = typer.Option("libx264", help="Encoder of --push and --record (libx264, libx265, ...).",
        rich_help_panel=ENCODE_PANEL),
    crf: int = typer.Option(23, help="Constant rate factor of --push and --record (lower: better).",
        rich_help_panel=ENCODE_PANEL),
    preset: str = typer.Option("veryfast", help="Encoder preset of --push and --record.",
        rich_help_panel=ENCODE_PANEL),
    bitrate: Optional[str] = typer.Option(None, show_default=False,
                                          help="Target bitrate of --push and --record, e.g. 4M.",
        rich_help_panel=ENCODE_PANEL),
    hwaccel: str = typer.Option("none", help="Decode on the GPU (NVDEC): auto, cuda or none.",
        rich_help_panel=ENCODE_PANEL),
    max_seconds: Optional[float] = typer.Option(None, help="Stop after this many seconds.",
        rich_help_panel=OUTPUTS_PANEL),
    max_frames: Optional[int] = typer.Option(None, help="Stop after this many output frames.",
        rich_help_panel=OUTPUTS_PANEL),
    status_every: float = typer.Option(5.0, help="Seconds between status lines.",
        rich_help_panel=OUTPUTS_PANEL),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No status line; warnings and errors only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging (and FFmpeg's own)."),
) -> None:
    """Derain a live stream: push it, preview it and/or record it, until Ctrl-C."""
    if not url:
        missing_input("live", "stream URL")
    if not url:
        missing_input("live", "stream URL")
    if quiet or verbose:  # the same meaning as the top-level -q / -v (and derain's)
        setup_logging(verbose, quiet)
    source = SourceConfig(url=url, transport=transport, input_format=input_format,
                          open_timeout_s=open_timeout, read_timeout_s=read_timeout, retries=retries,
                          reconnect_retries=reconnect_retries, backoff_s=backoff, backoff_max_s=backoff_max,
                          hwaccel=hwaccel)
    encode = EncodeOptions(codec=codec, crf=crf, preset=preset, bitrate=parse_bitrate(bitrate))
    cfg = LiveConfig(source=source, backend=backend, model=model, precision=precision, threads=threads,
                     backend_options=backend_options(device, trt_max_size, trt_max_batch, trt_workspace),
                     batch=batch, window=window, smooth=smooth, smooth_strength=smooth_strength,
                     encode=encode, max_latency_s=max_latency, push=tuple(push), preview_port=preview_port,
                     record_dir=record, segment_minutes=segment_minutes, max_seconds=max_seconds,
                     max_frames=max_frames, status_every_s=status_every if not quiet else 1e9)
    sigterm_as_interrupt()
    try:
        with status_reporter(quiet) as status_cb:
            stats = run_live(cfg, status_cb=status_cb)
    except KeyboardInterrupt:  # before the pipeline ran (it handles its own): nothing to finalise
        log.warning("interrupted while connecting")
        # the connecting thread may still be inside FFmpeg's av.open: tearing the interpreter
        # down under it crashed (SIGSEGV) on a loaded machine, so leave without a teardown
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    for path in stats.segments:
        log.info("recorded %s", path)
    log.info("%d frames out (%.1f fps), %d dropped, %d reconnect(s), latency p95 %.0f ms, max %.0f ms",
             stats.frames_out, stats.fps_out, stats.dropped, stats.reconnects, stats.latency_p95_s * 1000,
             stats.latency_max_s * 1000)
    if stats.interrupted:
        raise typer.Exit(130)
