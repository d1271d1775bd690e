"""The library's front door: derain a video file, an image or a folder of images."""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends import create_backend
from .backends.base import Backend
from .errors import InputError, OutputError
from .io import images
from .io.encode import check_options
from .io.paths import atomic_output, is_regular_or_fifo, is_url, same_file
from .io.video import EncodeOptions, FrameItem, VideoReader, VideoWriter
from .models import resolve_model
from .pipeline import IterSource, Pipeline, PipelineResult, Stage
from .smooth.core import DEFAULT_STRENGTH

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (frames done, frames expected or 0)
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
                  ".mpg", ".mpeg", ".3gp", ".ogv", ".mxf", ".y4m"}
MIN_SMOOTH_SIDE = 64  # the smoother's DIS flow runs at 1/4 size and crashes below 16 px a side


@dataclass(frozen=True)
class DerainConfig:
    input: Path
    output: Path | None = None
    backend: str = "auto"
    precision: str = "auto"  # as the CLI: OpenVINO picks and checks its fastest, fp32 elsewhere
    model: str | None = None  # manifest name or path to an .onnx file
    batch: int = 1
    threads: int = 0
    start: int = 0
    max_frames: int | None = None
    start_s: float = 0.0  # a time window in seconds (--ss / -t), beside the frame range
    duration_s: float | None = None
    overwrite: bool = False
    smooth: bool = True
    smooth_strength: float = DEFAULT_STRENGTH
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    queue_size: int = 8
    hwaccel: str = "auto"  # NVDEC decoding: auto (when an NVIDIA driver is present), cuda, none
    device_frames: bool | None = None  # keep frames on the backend's device; None: when it is a GPU


def default_output(inp: Path) -> Path:
    """``clip.derained.mp4`` beside ``clip.mp4`` (.mkv, .mov, .webm and images keep their
    extension, other containers become .mp4); ``frames_derained/`` for a folder."""
    if inp.is_dir():
        return inp.with_name(inp.name + "_derained")
    keep = images.SUFFIXES | {".mp4", ".mkv", ".mov", ".webm"}
    suffix = inp.suffix if inp.suffix.lower() in keep else ".mp4"
    return inp.with_name(f"{inp.stem}.derained{suffix}")


def check_input(inp: Path | str) -> None:
    """InputError unless ``inp`` is a readable file, FIFO or folder (a URL: see ``live``)."""
    if is_url(str(inp)):
        raise InputError(f"{inp} is a stream: derain reads files; use `stream-derain live URL` for streams")
    inp = Path(inp)
    if not inp.exists():
        raise InputError(f"input not found: {inp}")
    if not inp.is_dir() and not is_regular_or_fifo(inp):
        raise InputError(f"{inp} is not a regular file or folder")
    if not inp.is_dir() and not os.access(inp, os.R_OK):
        raise InputError(f"{inp} is not readable (permissions)")


def check_output(out: Path, inp: Path, overwrite: bool) -> None:
    """Refuse an output that is the input (by identity: hard and symbolic links count),
    exists without ``overwrite``, or has no writable folder."""
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


class InferStage(Stage):
    """Batches frames (up to ``batch``, without waiting for a full batch) through the
    backend; copied packets pass straight on."""

    def __init__(self, stop: Any, inq: queue.Queue, outq: queue.Queue, backend: Backend, batch: int,
                 keep_input: bool) -> None:
        super().__init__("infer", stop, inq, outq)
        self.backend, self.batch, self.keep_input = backend, max(batch, 1), keep_input
        self.pending: list[FrameItem] = []

    def _flush(self) -> list[FrameItem]:
        items, self.pending = self.pending, []
        if not items:
            return []
        shapes = {it.image.shape for it in items}
        for group in [items] if len(shapes) == 1 else [[it] for it in items]:
            self.infer_group(group)
        return items

    def infer_group(self, group: list[FrameItem]) -> None:
        """Derain a batch of same-size frames in place (HxWx3 uint8 on the host)."""
        out = self.backend.infer(np.stack([it.image for it in group]))
        for it, img in zip(group, out):
            it.rainy = it.image if self.keep_input else None
            it.image = img

    def work(self, item: Any) -> list[Any]:
        if not isinstance(item, FrameItem):
            return [item]
        self.pending.append(item)
        if len(self.pending) >= self.batch or self.inq.empty():
            return self._flush()
        return []

    def finish(self) -> list[Any]:
        return self._flush()


def frame_size(image: Any) -> tuple[int, int]:
    """(h, w) of an HxWx3 array or a 3xHxW tensor."""
    shape = tuple(image.shape)
    return (shape[1], shape[2]) if shape[0] == 3 and shape[-1] != 3 else (shape[0], shape[1])


class SmoothStage(Stage):
    """Runs the temporal smoother; frames under :data:`MIN_SMOOTH_SIDE` pixels a side
    pass unsmoothed (with one warning): its optical flow cannot work on them."""

    def __init__(self, stop: Any, inq: queue.Queue, outq: queue.Queue, smoother: Any) -> None:
        super().__init__("smooth", stop, inq, outq)
        self.smoother = smoother
        self.warned = False

    def too_small(self, image: Any) -> bool:
        h, w = frame_size(image)
        if min(h, w) >= MIN_SMOOTH_SIDE:
            return False
        if not self.warned:
            log.warning("frames of %dx%d are too small for the temporal smoother (it needs %d px a side): "
                        "not smoothed", w, h, MIN_SMOOTH_SIDE)
            self.warned = True
        return True

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem):
            if item.discontinuity:
                self.smoother.reset()
            if not self.too_small(item.image):
                item.image = self.smoother(item.image, item.rainy)
            item.rainy = None
        return [item]


class EncodeStage(Stage):
    def __init__(self, stop: Any, inq: queue.Queue, writer: VideoWriter, total: int,
                 progress: Progress | None) -> None:
        super().__init__("encode", stop, inq, None)
        self.writer, self.total, self.progress = writer, total, progress

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem):
            self.writer.write_frame(item)
            if self.progress:
                self.progress(self.writer.frames, self.total)
            return [None]
        self.writer.write_packet(item)
        return []

    def close(self) -> None:
        self.writer.close()


def make_smoother(strength: float, device: str = "cpu") -> Any:
    from .smooth import make_smoother as factory

    return factory(strength, device)


def uses_device_frames(cfg: DerainConfig, backend: Backend) -> bool:
    if cfg.device_frames is not None:
        return cfg.device_frames
    return hasattr(backend, "infer_tensor") and backend.device.startswith("cuda")


def frame_stages(p: Pipeline, cfg: DerainConfig, backend: Backend, inq: queue.Queue) -> queue.Queue:
    """Add infer (and smooth) stages after ``inq``; returns the queue the encoder reads.
    On a device backend frames stay on the device until a download stage."""
    q = lambda: queue.Queue(cfg.queue_size)  # noqa: E731
    out = q()
    if uses_device_frames(cfg, backend):
        from .device_frames import DeviceInferStage, DownloadStage

        p.add(DeviceInferStage(p.stop, inq, out, backend, cfg.batch, keep_input=cfg.smooth))
        if cfg.smooth:
            inq, out = out, q()
            device = backend.device if backend.device != "cpu" else "torch-cpu"
            p.add(SmoothStage(p.stop, inq, out, make_smoother(cfg.smooth_strength, device)))
        inq, out = out, q()
        p.add(DownloadStage(p.stop, inq, out))
        return out
    p.add(InferStage(p.stop, inq, out, backend, cfg.batch, keep_input=cfg.smooth))
    if cfg.smooth:
        inq, out = out, q()
        p.add(SmoothStage(p.stop, inq, out, make_smoother(cfg.smooth_strength)))
    return out


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


def derain_video(cfg: DerainConfig, backend: Backend, progress: Progress | None = None) -> PipelineResult:
    """Decode -> derain -> (smooth) -> encode in threads; the backend must be active.
    Written under a temporary name and renamed onto the output when done (or
    interrupted: then the finalised part is kept); a run with no frame is an error."""
    out = cfg.output or default_output(cfg.input)
    with atomic_output(out) as tmp:
        result, reader = _run_video(cfg, backend, tmp, progress)
        if result.frames == 0 and not result.interrupted:
            raise no_frames_error(cfg, reader)
    return result


def _run_video(cfg: DerainConfig, backend: Backend, out: Path,
               progress: Progress | None) -> tuple[PipelineResult, VideoReader]:
    reader = VideoReader(cfg.input, cfg.start, cfg.max_frames, hwaccel=cfg.hwaccel,
                         window=(cfg.start_s, cfg.duration_s))
    try:
        writer = VideoWriter(out, reader.info, cfg.encode, name=cfg.output or default_output(cfg.input))
    except BaseException:
        reader.close()
        raise
    p = Pipeline()
    decoded = queue.Queue(cfg.queue_size)
    # the input stays open until the encoder is done: copied packets refer to its streams
    p.add(IterSource("decode", p.stop, p.source_stop, decoded, reader.items))
    to_encode = frame_stages(p, cfg, backend, decoded)
    total = expected_frames(reader, cfg.start, cfg.max_frames) if not (cfg.start_s or cfg.duration_s) else 0
    p.add(EncodeStage(p.stop, to_encode, writer, total, progress))
    try:
        result = p.run(lambda: writer.frames)
    finally:
        reader.close()
    if reader.corrupt_packets:
        log.warning("skipped %d corrupt packet(s)", reader.corrupt_packets)
    return result, reader


def derain_image_files(files: list[tuple[Path, Path]], backend: Backend, batch: int,
                       progress: Progress | None = None) -> int:
    """Derain (src, dst) image pairs, ``batch`` at a time when sizes match."""
    done = 0
    for i in range(0, len(files), max(batch, 1)):
        chunk = files[i:i + max(batch, 1)]
        imgs = [images.read_image(src) for src, _ in chunk]
        rgbs = [im.rgb8 for im in imgs]
        if len({im.shape for im in rgbs}) == 1:
            outs = list(backend.infer(np.stack(rgbs)))
        else:
            outs = [backend.infer(im[None])[0] for im in rgbs]
        for (_, dst), img, src in zip(chunk, outs, imgs):
            with atomic_output(dst) as tmp:
                images.write_image(tmp, src.restore(img))
        done += len(chunk)
        if progress:
            progress(done, len(files))
    return done


def is_video(path: Path) -> bool:
    return not images.is_image(path)


def derain(cfg: DerainConfig, progress: Progress | None = None,
           backend: Backend | None = None) -> tuple[Path, PipelineResult | int]:
    """Derain ``cfg.input`` (video, image or image folder) into ``cfg.output``.
    Returns the output path and the pipeline result (video) or image count. ``backend``:
    an active backend to reuse (batches); by default one is created for this call."""
    inp = cfg.input
    check_input(inp)
    out = cfg.output or default_output(inp)
    check_output(out, inp, cfg.overwrite)
    if not inp.is_dir() and not images.is_image(inp):
        check_options(cfg.encode)  # before the model loads
    if backend is not None:
        return out, _derain_with(cfg, inp, out, backend, progress)
    with create_backend(cfg.backend, resolve_model(cfg.model), cfg.precision, cfg.threads) as be:
        return out, _derain_with(cfg, inp, out, be, progress)


def _derain_with(cfg: DerainConfig, inp: Path, out: Path, backend: Backend,
                 progress: Progress | None) -> PipelineResult | int:
    if inp.is_dir():
        return derain_folder(inp, out, backend, cfg.batch, progress)
    if images.is_image(inp):
        return derain_image_files([(inp, out)], backend, 1, progress)
    log.info("backend: %s", backend.describe())
    return derain_video(DerainConfig(**{**cfg.__dict__, "output": out}), backend, progress)


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
