"""The library's front door: derain a video file, an image or a folder of images."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .backends.base import Backend, model_frames
from .catalog import still_model
from .engine_spec import EngineSpec, open_engine
from .errors import InputError, OutputError
from .io import images
from .io.encode_options import check_container, check_options
from .io.paths import atomic_output, check_name, is_regular_or_fifo, is_url, same_file
from .io.video import EncodeOptions, VideoReader, VideoWriter, probe_video
from .pipeline import PipelineResult, RunControl, sigint_sets
from .stages import QUEUE_SIZE, Progress, file_pipeline, uses_device_frames
from .window import still_window

log = logging.getLogger(__name__)
KEEP_SUFFIXES = images.SUFFIXES | {".mp4", ".mkv", ".mov", ".webm"}  # outputs keep these; others become .mp4
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
                  ".mpg", ".mpeg", ".3gp", ".ogv", ".mxf", ".y4m"}


@dataclass(frozen=True)
class DerainConfig:
    """One derain call: what to read and write, and ``engine`` (:class:`~.engine_spec.EngineSpec`):
    the backend, model, precision, batch, threads, smoother, device frames, typed backend
    options and the window of a multi-frame model (``auto``: files run centred), as
    ``live`` and ``bench`` take them."""

    input: Path
    output: Path | None = None
    engine: EngineSpec = field(default_factory=EngineSpec)
    start: int = 0
    max_frames: int | None = None
    start_s: float = 0.0  # a time window in seconds (--ss / -t), beside the frame range
    duration_s: float | None = None
    overwrite: bool = False
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    queue_size: int = QUEUE_SIZE
    hwaccel: str = "auto"  # NVDEC decoding: auto (when an NVIDIA driver is present), cuda, none

    @property
    def window_mode(self) -> str:
        """The window mode files run: centred unless asked for causal."""
        return "causal" if self.engine.window == "causal" else "centred"


@dataclass
class DerainResult(PipelineResult):
    """What :func:`derain` did: ``frames`` written (video frames, or images for an image
    or a folder: ``kind`` ``"images"``), in ``seconds``; ``stages``: the pipeline's stage
    statistics (none for images); ``interrupted``: the run's control was set (Ctrl-C,
    SIGTERM) and ended a video early (the output is finalised and playable)."""

    kind: str = "video"


def default_output(inp: Path) -> Path:
    """``clip.derained.mp4`` beside ``clip.mp4`` (.mkv, .mov, .webm and images keep their
    extension, other containers become .mp4); ``frames_derained/`` for a folder."""
    if inp.is_dir():
        return inp.with_name(inp.name + "_derained")
    suffix = inp.suffix if inp.suffix.lower() in KEEP_SUFFIXES else ".mp4"
    return inp.with_name(f"{inp.stem}.derained{suffix}")


def check_input(inp: Path | str) -> None:
    """InputError unless ``inp`` is a readable file, FIFO or folder (a URL: see ``live``)."""
    if is_url(str(inp)):
        raise InputError(f"{inp} is a stream: derain reads files; use `stream-derain live URL` for streams")
    inp = Path(inp)
    try:
        exists = inp.exists()
    except OSError as exc:  # e.g. a name longer than the filesystem holds
        raise InputError(f"cannot read {str(inp)[:60]}...: {exc.strerror}") from None
    if not exists:
        raise InputError(f"input not found: {inp}")
    if not inp.is_dir() and not is_regular_or_fifo(inp):
        raise InputError(f"{inp} is not a regular file or folder")
    if not inp.is_dir() and not os.access(inp, os.R_OK):
        raise InputError(f"{inp} is not readable (permissions)")


def check_output(out: Path, inp: Path, overwrite: bool) -> None:
    """Refuse an output that is the input (by identity: hard and symbolic links count),
    exists without ``overwrite``, or has no writable folder."""
    check_name(out)
    if same_file(out, inp):
        raise OutputError(f"output would overwrite the input: {out} is {inp}")
    if inp.is_dir():
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} is a file: a folder input needs an output folder")
        if out.is_dir() and any(out.iterdir()) and not overwrite:
            raise OutputError(f"{out} exists and is not empty (use --overwrite to replace its files)")
    elif out.is_dir():
        example = out / default_output(inp).name
        raise OutputError(f"{out} is a folder: give an output file name (e.g. {example})")
    elif out.exists() and not overwrite:
        raise OutputError(f"{out} exists (use --overwrite to replace it)")
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {parent}")


def check_media(inp: Path, out: Path, encode: EncodeOptions) -> None:
    """The checks that need the media, all before any model loads: a folder of images
    writes a folder; a video input opens and has a video stream, and its output's
    container (asked of the muxer) holds the codec."""
    if inp.is_dir():
        if not out.is_dir() and out.suffix.lower() in VIDEO_SUFFIXES | images.SUFFIXES:
            raise OutputError(f"{inp} is a folder of images: -o names an output folder, not a file like "
                              f"{out.name}")
        return
    if images.is_image(inp):
        if out.suffix.lower() not in images.SUFFIXES:
            raise OutputError(f"{inp.name} is an image: -o names an image file (e.g. "
                              f"{out.with_suffix(inp.suffix).name}), not {out.name}")
        return
    check_options(encode)
    check_container(out, encode)
    if inp.is_file():  # a FIFO is read once: the reader opens it
        probe_video(inp)


def expected_frames(reader: VideoReader, start: int, max_frames: int | None) -> int:
    n = max(reader.info.frames - start, 0)
    return min(n, max_frames) if max_frames is not None and n else (max_frames or n)


def no_frames_error(cfg: DerainConfig, reader: VideoReader) -> InputError:
    known = reader.info.frames
    if cfg.start_s:
        return InputError(f"no frames to write: nothing at or after --ss {cfg.start_s:g} s in {cfg.input}")
    if cfg.start and known and cfg.start >= known:
        return InputError(f"no frames to write: --start {cfg.start} is past the end of {cfg.input} "
                          f"({known} frames)")
    return InputError(f"no frames could be decoded from {cfg.input} (nothing written)")


def derain_video(cfg: DerainConfig, backend: Backend, progress: Progress | None = None,
                 control: RunControl | None = None) -> PipelineResult:
    """Decode -> derain -> (smooth) -> encode in threads; the backend must be active.
    Written under a temporary name and renamed onto the output when done (or
    interrupted, ``control`` set or Ctrl-C: then the finalised part is kept); a run with
    no frame is an error."""
    out = cfg.output or default_output(cfg.input)
    with atomic_output(out, overwrite=True if cfg.overwrite else None) as tmp:
        result, reader = _run_video(cfg, backend, tmp, progress, control)
        if result.frames == 0 and not result.interrupted:
            raise no_frames_error(cfg, reader)
    return result


def _run_video(cfg: DerainConfig, backend: Backend, out: Path, progress: Progress | None,
               control: RunControl | None) -> tuple[PipelineResult, VideoReader]:
    reader = VideoReader(cfg.input, cfg.start, cfg.max_frames, hwaccel=cfg.hwaccel,
                         window=(cfg.start_s, cfg.duration_s))
    try:
        writer = VideoWriter(out, reader.info, cfg.encode, name=cfg.output or default_output(cfg.input))
    except BaseException:
        reader.close()
        raise
    total = expected_frames(reader, cfg.start, cfg.max_frames) if not (cfg.start_s or cfg.duration_s) else 0
    eng = cfg.engine
    p = file_pipeline(reader, writer, backend, total=total, progress=progress, queue_size=cfg.queue_size,
                      batch=eng.batch, smooth=eng.smooth, strength=eng.smooth_strength,
                      device_frames=uses_device_frames(backend, eng.device_frames), mode=cfg.window_mode)
    try:
        result = p.run(lambda: writer.frames, control)
    finally:
        reader.close()
    if reader.corrupt_packets:
        log.warning("skipped %d corrupt packet(s)", reader.corrupt_packets)
    return result, reader


def derain_image_files(files: list[tuple[Path, Path]], backend: Backend, batch: int,
                       progress: Progress | None = None) -> int:
    """Derain (src, dst) image pairs, ``batch`` at a time when sizes match (a multi-frame
    model gets each image in every slot of its window)."""
    done, k = 0, model_frames(backend)
    for i in range(0, len(files), max(batch, 1)):
        chunk = files[i:i + max(batch, 1)]
        imgs = [images.read_image(src) for src, _ in chunk]
        rgbs = [im.rgb8 for im in imgs]
        if len({im.shape for im in rgbs}) == 1:
            outs = list(backend.infer(still_window(np.stack(rgbs), k)))
        else:
            outs = [backend.infer(still_window(im[None], k))[0] for im in rgbs]
        for (_, dst), img, src in zip(chunk, outs, imgs):
            with atomic_output(dst) as tmp:
                images.write_image(tmp, src.restore(img))
        done += len(chunk)
        if progress:
            progress(done, len(files))
    return done


def is_video(path: Path) -> bool:
    return not images.is_image(path)


def derain(cfg: DerainConfig, progress: Progress | None = None, backend: Backend | None = None,
           control: RunControl | None = None) -> tuple[Path, DerainResult]:
    """Derain ``cfg.input`` (video, image or image folder) into ``cfg.output``.
    Returns the output path and a :class:`DerainResult` (frames or images written).
    ``backend``: an active backend to reuse (batches); by default one is opened for this
    call (:func:`~.engine_spec.open_engine` of ``cfg.engine``). ``control``: the run's
    stop request (:class:`~.pipeline.RunControl`), set by the caller to end a video early
    (finalised, ``interrupted``); None: a fresh one, which Ctrl-C sets while this call
    runs in the main thread (the previous SIGINT handler is put back after), so a
    library call stops as the command line does."""
    out = check_job(cfg)
    return out, derain_checked(cfg, out, progress, backend, control)


def derain_checked(cfg: DerainConfig, out: Path, progress: Progress | None = None,
                   backend: Backend | None = None, control: RunControl | None = None) -> DerainResult:
    """:func:`derain` after its checks (:func:`check_job`, which returned ``out``): for a
    caller that ran them already, before loading a model (the batch's runner)."""
    if control is not None:
        return _derain_opened(cfg, out, backend, progress, control)
    with sigint_sets(RunControl()) as own:
        return _derain_opened(cfg, out, backend, progress, own)


def check_job(cfg: DerainConfig) -> Path:
    """Every check of :func:`derain` before any model loads; returns the output path."""
    inp = cfg.input
    check_input(inp)
    out = cfg.output or default_output(inp)
    check_output(out, inp, cfg.overwrite)
    check_media(inp, out, cfg.encode)
    return out


def _derain_opened(cfg: DerainConfig, out: Path, backend: Backend | None, progress: Progress | None,
                   control: RunControl) -> DerainResult:
    if backend is not None:
        return _derain_with(cfg, cfg.input, out, backend, progress, control)
    with open_engine(cfg.engine) as be:
        log.info("%s", be.summary())  # once per backend: a caller that passes one has said it
        return _derain_with(cfg, cfg.input, out, be, progress, control)


def _derain_with(cfg: DerainConfig, inp: Path, out: Path, backend: Backend, progress: Progress | None,
                 control: RunControl) -> DerainResult:
    t0 = time.perf_counter()
    if inp.is_dir() or images.is_image(inp):
        stills = still_model(backend.model)
        if stills is not backend.model:  # the model names a single-frame model for images
            with open_engine(cfg.engine, stills) as be:
                return _derain_with(cfg, inp, out, be, progress, control)
        n = (derain_folder(inp, out, backend, cfg.engine.batch, progress) if inp.is_dir()
             else derain_image_files([(inp, out)], backend, 1, progress))
        return DerainResult(n, time.perf_counter() - t0, False, [], kind="images")
    r = derain_video(replace(cfg, output=out), backend, progress, control)
    return DerainResult(r.frames, r.seconds, r.interrupted, r.stages, kind="video")


def derain_folder(inp: Path, out: Path, backend: Backend, batch: int, progress: Progress | None) -> int:
    """The images of a folder into ``out`` (created; removed again if nothing was written)."""
    pairs = [(src, out / src.name) for src in images.list_images(inp)]
    created = not out.exists()
    out.mkdir(exist_ok=True)
    try:
        return derain_image_files(pairs, backend, batch, progress)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
