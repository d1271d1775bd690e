"""``stream-derain derain``: a video file, an image or a folder of images."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Optional

import typer

from ..derain import DerainConfig, derain
from ..io.video import EncodeOptions
from ..pipeline import PipelineResult
from ..smooth import DEFAULT_STRENGTH
from .common import app, handle_errors, setup_logging
from .progress import progress_reporter

log = logging.getLogger("stream_derain")


def _sigterm_as_interrupt() -> None:
    """SIGTERM finishes like Ctrl-C: frames in flight are written, the file is finalised."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@app.command("derain")
@handle_errors
def derain_cmd(
    input: Path = typer.Argument(..., help="Video file (anything PyAV opens), image, or folder of images."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file or folder "
                                          "[default: INPUT.derained.mp4 / INPUT_derained/]."),
    backend: str = typer.Option("auto", help="auto, openvino, onnxruntime, torch or tensorrt."),
    precision: str = typer.Option("auto", "--precision", "-p", help="auto, fp32, bf16 or fp16 (auto: "
                                  "OpenVINO's fastest precision within 50 dB of fp32, fp32 elsewhere)."),
    model: Optional[str] = typer.Option(None, help="Shipped model name or path to an .onnx file."),
    batch: int = typer.Option(1, min=1, help="Frames per inference call."),
    threads: int = typer.Option(0, min=0, help="CPU threads for onnxruntime (0: all cores)."),
    codec: str = typer.Option("libx264", help="Output video encoder (libx264, libx265, libvpx-vp9, ...)."),
    crf: int = typer.Option(18, help="Constant rate factor of the encoder (lower is better quality)."),
    preset: str = typer.Option("medium", help="Encoder preset (x264/x265: ultrafast ... veryslow)."),
    pix_fmt: Optional[str] = typer.Option(None, help="Output pixel format [default: the source's]."),
    hwaccel: str = typer.Option("auto", help="Decode on the GPU (NVDEC): auto, cuda or none; "
                                "falls back to the CPU when unavailable."),
    start: int = typer.Option(0, min=0, help="First frame to process."),
    max_frames: Optional[int] = typer.Option(None, min=1, help="Process at most this many frames."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace an existing output."),
    smooth: bool = typer.Option(True, "--smooth/--no-smooth", help="Temporal-consistency smoother."),
    smooth_strength: float = typer.Option(DEFAULT_STRENGTH, min=0.0, max=1.0, help="Smoother strength."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, warnings only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Remove rain from a video, an image or a folder of images."""
    if quiet or verbose:
        setup_logging(verbose, quiet)
    cfg = DerainConfig(
        input=input, output=output, backend=backend, precision=precision, model=model, batch=batch,
        threads=threads, hwaccel=hwaccel, start=start, max_frames=max_frames, overwrite=overwrite,
        smooth=smooth, smooth_strength=smooth_strength,
        encode=EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt),
    )
    _sigterm_as_interrupt()
    with progress_reporter(f"derain {input.name}", quiet) as progress:
        out, result = derain(cfg, progress)
    if isinstance(result, PipelineResult):
        if result.interrupted:
            log.warning("Interrupted: wrote %d frames to %s (finalised and playable)", result.frames, out)
            raise typer.Exit(130)
        log.info("wrote %s: %d frames in %.1fs (%.1f fps)", out, result.frames, result.seconds, result.fps)
        for stage in result.stages:
            log.debug("stage %s", stage.as_dict())
    else:
        log.info("wrote %d image(s) to %s", result, out)
