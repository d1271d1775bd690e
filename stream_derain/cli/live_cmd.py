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

from ..engine_spec import EngineSpec
from ..io.encode_options import EncodeOptions
from ..live import LiveConfig, LiveStats, SourceConfig, run_live
from .common import (
    ENCODE_PANEL,
    app,
    handle_errors,
    missing_input,
    parse_bitrate,
    setup_logging,
    sigterm_as_interrupt,
)
from .engine_options import engine_options

log = logging.getLogger("stream_derain")
STREAM_PANEL, OUTPUTS_PANEL = "Stream", "Outputs"


def _stream(default: object, *decls: str, **kw: object) -> object:
    return typer.Option(default, *decls, rich_help_panel=STREAM_PANEL, **kw)


def _out(default: object, *decls: str, **kw: object) -> object:
    return typer.Option(default, *decls, rich_help_panel=OUTPUTS_PANEL, **kw)


def _enc(default: object, *decls: str, **kw: object) -> object:
    return typer.Option(default, *decls, rich_help_panel=ENCODE_PANEL, **kw)


# live's own options (the engine's are shared: .engine_options)
URL = typer.Argument(None, show_default=False,
                     help="rtsp://, http(s):// URL or a camera device (/dev/video0).")
TRANSPORT = _stream("tcp", "--transport", help="RTSP transport: tcp or udp.")
FORMAT = _stream(None, "--format", help="Input format (e.g. v4l2).")
OPEN_TIMEOUT = _stream(10.0, "--open-timeout", help="Seconds to wait when connecting.")
READ_TIMEOUT = _stream(5.0, "--read-timeout",
                       help="Seconds without data before the stream counts as stalled.")
RETRIES = _stream(5, "--retries", min=1, help="Connection attempts at start.")
RECONNECT_RETRIES = _stream(None, "--reconnect-retries", min=1,
                            help="Give up after this many failed reconnects in a row (default: never).")
BACKOFF = _stream(0.5, "--backoff", help="First wait between attempts (doubles each time).")
BACKOFF_MAX = _stream(10.0, "--backoff-max", help="Longest wait between attempts.")
PUSH = _out([], "--push", help="Publish to rtsp://... or rtmp://... (repeatable).")
PREVIEW_PORT = _out(None, "--preview-port", help="MJPEG preview on http://127.0.0.1:PORT/.")
RECORD = _out(None, "--record", help="Record fragmented MP4 segments into this folder.")
SEGMENT_MINUTES = _out(10.0, "--segment-minutes", help="Length of a recorded segment (fractions allowed).")
MAX_LATENCY = _out(1.0, "--max-latency", help="Latency bound in seconds (older frames are dropped).")
MAX_SECONDS = _out(None, "--max-seconds", help="Stop after this many seconds.")
MAX_FRAMES = _out(None, "--max-frames", help="Stop after this many output frames.")
STATUS_EVERY = _out(5.0, "--status-every", help="Seconds between status lines.")
CODEC = _enc("libx264", "--codec", help="Encoder of --push and --record (libx264, libx265, ...).")
CRF = _enc(23, "--crf", help="Constant rate factor of --push and --record (lower: better).")
PRESET = _enc("veryfast", "--preset", help="Encoder preset of --push and --record.")
BITRATE = _enc(None, "--bitrate", show_default=False, help="Target bitrate of --push and --record, e.g. 4M.")
HWACCEL = _enc("none", "--hwaccel", help="Decode on the GPU (NVDEC): auto, cuda or none.")
QUIET = typer.Option(False, "--quiet", "-q", help="No status line; warnings and errors only.")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Debug logging (and FFmpeg's own).")


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
@engine_options()
def live_cmd(url: Optional[str] = URL, transport: str = TRANSPORT, input_format: Optional[str] = FORMAT,
             open_timeout: float = OPEN_TIMEOUT, read_timeout: float = READ_TIMEOUT, retries: int = RETRIES,
             reconnect_retries: Optional[int] = RECONNECT_RETRIES, backoff: float = BACKOFF,
             backoff_max: float = BACKOFF_MAX, push: list[str] = PUSH,
             preview_port: Optional[int] = PREVIEW_PORT,
             record: Optional[Path] = RECORD, segment_minutes: float = SEGMENT_MINUTES,
             max_latency: float = MAX_LATENCY, engine: EngineSpec = EngineSpec(), codec: str = CODEC,
             crf: int = CRF, preset: str = PRESET, bitrate: Optional[str] = BITRATE, hwaccel: str = HWACCEL,
             max_seconds: Optional[float] = MAX_SECONDS, max_frames: Optional[int] = MAX_FRAMES,
             status_every: float = STATUS_EVERY, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Derain a live stream: push it, preview it and/or record it, until Ctrl-C."""
    if not url:
        missing_input("live", "stream URL")
    if quiet or verbose:  # the same meaning as the top-level -q / -v (and derain's)
        setup_logging(verbose, quiet)
    source = SourceConfig(url=url, transport=transport, input_format=input_format,
                          open_timeout_s=open_timeout, read_timeout_s=read_timeout, retries=retries,
                          reconnect_retries=reconnect_retries, backoff_s=backoff, backoff_max_s=backoff_max,
                          hwaccel=hwaccel)
    encode = EncodeOptions(codec=codec, crf=crf, preset=preset, bitrate=parse_bitrate(bitrate))
    cfg = LiveConfig(source=source, engine=engine, encode=encode, max_latency_s=max_latency, push=tuple(push),
                     preview_port=preview_port, record_dir=record, segment_minutes=segment_minutes,
                     max_seconds=max_seconds, max_frames=max_frames,
                     status_every_s=status_every if not quiet else 1e9)
    control = sigterm_as_interrupt()
    try:
        with status_reporter(quiet) as status_cb:
            stats = run_live(cfg, status_cb=status_cb, control=control)
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
