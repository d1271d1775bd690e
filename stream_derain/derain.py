"""The library's front door: derain a video file, an image or a folder of images."""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from .backends import create_backend
from .backends.base import Backend
from .errors import InputError, OutputError
from .io import images
from .io.video import EncodeOptions, FrameItem, VideoReader, VideoWriter
from .models import ModelInfo, load_model_info, model_from_path
from .pipeline import IterSource, Pipeline, PipelineResult, Stage
from .smooth.core import DEFAULT_STRENGTH

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (frames done, frames expected or 0)


@dataclass(frozen=True)
class DerainConfig:
    input: Path
    output: Path | None = None
    backend: str = "auto"
    precision: str = "fp32"
    model: str | None = None  # manifest name or path to an .onnx file
    batch: int = 1
    threads: int = 0
    start: int = 0
    max_frames: int | None = None
    overwrite: bool = False
    smooth: bool = True
    smooth_strength: float = DEFAULT_STRENGTH
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    queue_size: int = 8
    hwaccel: str = "auto"  # NVDEC decoding: auto (when an NVIDIA driver is present), cuda, none
    device_frames: bool | None = None  # keep frames on the backend's device; None: when it is a GPU


def resolve_model(spec: str | None) -> ModelInfo:
    if spec and (spec.endswith(".onnx") or Path(spec).is_file()):
        return model_from_path(Path(spec))
    return load_model_info(spec)


def default_output(inp: Path) -> Path:
    if inp.is_dir():
        return inp.with_name(inp.name + "_derained")
    suffix = inp.suffix if inp.suffix.lower() in images.SUFFIXES | {".mp4", ".mkv", ".mov"} else ".mp4"
    return inp.with_name(f"{inp.stem}.derained{suffix}")


def check_output(out: Path, inp: Path, overwrite: bool) -> None:
    if out.resolve() == inp.resolve():
        raise OutputError(f"output would overwrite the input: {out}")
    if out.exists() and not overwrite:
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


class SmoothStage(Stage):
    def __init__(self, stop: Any, inq: queue.Queue, outq: queue.Queue, smoother: Any) -> None:
        super().__init__("smooth", stop, inq, outq)
        self.smoother = smoother

    def work(self, item: Any) -> list[Any]:
        if isinstance(item, FrameItem):
            if item.discontinuity:
                self.smoother.reset()
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


def derain_video(cfg: DerainConfig, backend: Backend, progress: Progress | None = None) -> PipelineResult:
    """Decode -> derain -> (smooth) -> encode in threads; the backend must be active."""
    out = cfg.output or default_output(cfg.input)
    reader = VideoReader(cfg.input, cfg.start, cfg.max_frames, hwaccel=cfg.hwaccel)
    try:
        writer = VideoWriter(out, reader.info, cfg.encode)
    except BaseException:
        reader.close()
        raise
    p = Pipeline()
    decoded = queue.Queue(cfg.queue_size)
    # the input stays open until the encoder is done: copied packets refer to its streams
    p.add(IterSource("decode", p.stop, p.source_stop, decoded, reader.items))
    to_encode = frame_stages(p, cfg, backend, decoded)
    p.add(EncodeStage(p.stop, to_encode, writer, expected_frames(reader, cfg.start, cfg.max_frames),
                      progress))
    try:
        result = p.run(lambda: writer.frames)
    finally:
        reader.close()
    if reader.corrupt_packets:
        log.warning("skipped %d corrupt packet(s)", reader.corrupt_packets)
    return result


def derain_image_files(files: list[tuple[Path, Path]], backend: Backend, batch: int,
                       progress: Progress | None = None) -> int:
    """Derain (src, dst) image pairs, ``batch`` at a time when sizes match."""
    done = 0
    for i in range(0, len(files), max(batch, 1)):
        chunk = files[i:i + max(batch, 1)]
        imgs = [images.read_rgb(src) for src, _ in chunk]
        if len({im.shape for im in imgs}) == 1:
            outs = list(backend.infer(np.stack(imgs)))
        else:
            outs = [backend.infer(im[None])[0] for im in imgs]
        for (_, dst), img in zip(chunk, outs):
            images.write_rgb(dst, img)
        done += len(chunk)
        if progress:
            progress(done, len(files))
    return done


def is_video(path: Path) -> bool:
    return not images.is_image(path)


def derain(cfg: DerainConfig, progress: Progress | None = None) -> tuple[Path, PipelineResult | int]:
    """Derain ``cfg.input`` (video, image or image folder) into ``cfg.output``.
    Returns the output path and the pipeline result (video) or image count."""
    inp = cfg.input
    if not inp.exists():
        raise InputError(f"input not found: {inp}")
    out = cfg.output or default_output(inp)
    check_output(out, inp, cfg.overwrite)
    model = resolve_model(cfg.model)
    if inp.is_dir():
        pairs = [(src, out / src.name) for src in images.list_images(inp)]
        out.mkdir(exist_ok=True)
        with create_backend(cfg.backend, model, cfg.precision, cfg.threads) as backend:
            return out, derain_image_files(pairs, backend, cfg.batch, progress)
    if images.is_image(inp):
        with create_backend(cfg.backend, model, cfg.precision, cfg.threads) as backend:
            return out, derain_image_files([(inp, out)], backend, 1, progress)
    try:
        av_probe = av.open(str(inp))
        av_probe.close()
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot open {inp}: {exc.strerror or exc}") from None
    with create_backend(cfg.backend, model, cfg.precision, cfg.threads) as backend:
        log.info("backend: %s", backend.describe())
        return out, derain_video(DerainConfig(**{**cfg.__dict__, "output": out}), backend, progress)
