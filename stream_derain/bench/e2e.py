"""End-to-end mode: the full decode -> infer -> smooth -> encode pipeline on a real
file, and each stage alone on the same frames in the same run.

Isolated stages (wall clock, :func:`time.perf_counter`):

- decode: :class:`VideoReader` over the file, frames kept in memory;
- infer: ``backend.infer`` over those frames (after one untimed warm-up call);
- smooth: the temporal smoother over the (derained, rainy) pairs in memory;
- encode: :class:`VideoWriter` writing the derained frames to a temporary file
  (including the final flush, which is where x264 emits its look-ahead frames).

``efficiency = pipeline fps / fps of the slowest isolated stage``: 1.0 means the
threads overlap perfectly. Stages share the CPU in the pipeline but not alone, so on
a machine with few cores the efficiency is bounded by contention, not by the design.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..derain import DerainConfig, derain_video, make_smoother
from ..io.video import EncodeOptions, FrameItem, VideoReader, VideoWriter
from .config import EFFICIENCY_TARGET
from .engine import error_reason
from .timing import MemoryProbe

log = logging.getLogger(__name__)
STAGES = ("decode", "infer", "smooth", "encode")


def _stage(frames: int, seconds: float) -> dict[str, Any]:
    fps = frames / seconds if seconds > 0 else 0.0
    return {"status": "ok", "reason": None, "frames": frames, "seconds": round(seconds, 4),
            "fps": round(fps, 3)}


def decode_only(path: Path, frames: int | None) -> tuple[dict[str, Any], list[FrameItem], Any]:
    """Decode the file (at most ``frames`` frames) into memory; also returns its VideoInfo."""
    t0 = time.perf_counter()
    reader = VideoReader(path, 0, frames)
    try:
        items = [it for it in reader.items() if isinstance(it, FrameItem)]
    finally:
        reader.close()
    return _stage(len(items), time.perf_counter() - t0), items, reader.info


def infer_only(backend: Backend, images: list[np.ndarray], batch: int,
               warmup: int = 2) -> tuple[dict[str, Any], list[np.ndarray]]:
    """``backend.infer`` over frames held in memory, ``batch`` at a time, after
    ``warmup`` untimed calls at this frame size (first-call allocations, lazy init)."""
    first = np.stack(images[:batch])
    for _ in range(max(warmup, 1)):
        backend.infer(first)
    out: list[np.ndarray] = []
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        out.extend(backend.infer(np.stack(images[i:i + batch])))
    return _stage(len(images), time.perf_counter() - t0), out


def smooth_only(smoother: Any, derained: list[np.ndarray], rainy: list[np.ndarray]) -> dict[str, Any]:
    """The smoother over (derained, rainy) pairs in memory."""
    smoother.reset()
    t0 = time.perf_counter()
    for d, r in zip(derained, rainy):
        smoother(d, r)
    return _stage(len(derained), time.perf_counter() - t0)


def encode_only(items: list[FrameItem], derained: list[np.ndarray], info: Any, out: Path,
                opts: EncodeOptions) -> dict[str, Any]:
    """Encode the derained frames (with the source's timestamps) to ``out``."""
    writer = VideoWriter(out, dataclasses.replace(info, copy_streams=[]), opts)
    t0 = time.perf_counter()
    try:
        for it, img in zip(items, derained):
            writer.write_frame(FrameItem(it.index, it.pts, it.time_base, img))
    finally:
        writer.close()
    return _stage(len(derained), time.perf_counter() - t0)


def pipeline_efficiency(pipeline_fps: float, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The slowest stage that ran (the bottleneck) and ``pipeline fps / its fps``."""
    ran = {name: s["fps"] for name, s in stages.items() if s.get("status") == "ok" and s.get("fps")}
    if not ran:
        return {"bottleneck": None, "bottleneck_fps": None, "efficiency": None,
                "efficiency_target": EFFICIENCY_TARGET, "meets_target": None, "warning": None}
    name = min(ran, key=ran.get)
    eff = pipeline_fps / ran[name]
    warning = None
    if eff > 1.1:
        warning = (f"pipeline faster than {name} alone: the isolated measurement was disturbed (shared CPU) "
                   "or the backend is thread-sensitive (OpenMP spin-waiting: try OMP_WAIT_POLICY=PASSIVE)")
    return {"bottleneck": name, "bottleneck_fps": ran[name], "efficiency": round(eff, 3),
            "efficiency_target": EFFICIENCY_TARGET, "meets_target": eff >= EFFICIENCY_TARGET,
            "warning": warning}


def _try_smoother(factory: Callable[[float], Any], strength: float) -> tuple[Any, str | None]:
    try:
        return factory(strength), None
    except Exception as exc:  # noqa: BLE001 - ImportError while smooth/ is being written, etc.
        return None, error_reason(exc)


def _busy_estimate(stats: dict[str, Any], seconds: float, source: bool) -> dict[str, Any]:
    """Add ``busy_est_s`` and ``fps_in_pipeline`` to a StageStats dict.

    The source's ``busy_s`` times its generator and is exact. For ``work()`` stages,
    ``busy_s`` only covers iterating the list that ``work`` already returned, so the
    busy time is estimated as the stage's wall time minus its queue waits (its thread
    lives about as long as the pipeline); ``max`` keeps a correct ``busy_s`` if the
    stage ever measures it.
    """
    waits = stats["wait_in_s"] + stats["wait_out_s"]
    busy = stats["busy_s"] if source else max(stats["busy_s"], seconds - waits)
    stats["busy_est_s"] = round(busy, 4)
    stats["fps_in_pipeline"] = round(stats["items"] / busy, 3) if busy > 0 else None
    return stats


def _run_pipeline(backend: Backend, path: Path, out: Path, frames: int | None, batch: int, smooth: bool,
                  strength: float, opts: EncodeOptions) -> dict[str, Any]:
    cfg = DerainConfig(input=path, output=out, batch=batch, max_frames=frames, overwrite=True, smooth=smooth,
                       smooth_strength=strength, encode=opts)
    with MemoryProbe(backend.device) as mem:
        res = derain_video(cfg, backend)
    stats = [_busy_estimate(s.as_dict(), res.seconds, i == 0) for i, s in enumerate(res.stages)]
    busiest = max(stats, key=lambda s: s["queue_mean"]) if stats else None
    return {"frames": res.frames, "seconds": round(res.seconds, 4), "fps": round(res.fps, 3),
            "smooth": smooth, "queue_size": cfg.queue_size, "stages": stats,
            "frames_wait_before": busiest["name"] if busiest and busiest["queue_mean"] > 0 else None,
            **mem.as_dict()}


def run_e2e(backend: Backend, path: Path, frames: int | None, batch: int = 1, smooth: bool = True,
            strength: float = 0.7, smoother_factory: Callable[[float], Any] = make_smoother,
            opts: EncodeOptions | None = None, warmup: int = 2) -> dict[str, Any]:
    """Isolated stage throughputs and the full pipeline on ``path``; the backend must be active."""
    opts = opts or EncodeOptions()
    stages: dict[str, dict[str, Any]] = {}
    stages["decode"], items, info = decode_only(path, frames)
    if not items:
        raise ValueError(f"no frames decoded from {path}")
    rainy = [it.image for it in items]
    stages["infer"], derained = infer_only(backend, rainy, batch, warmup)
    smoother, why = _try_smoother(smoother_factory, strength) if smooth else (None, "disabled (--no-smooth)")
    if smoother is not None:
        stages["smooth"] = smooth_only(smoother, derained, rainy)
    else:
        stages["smooth"] = {"status": "unavailable" if smooth else "disabled", "reason": why, "fps": None}
        log.warning("smoother not measured and not in the pipeline: %s", why)
    with tempfile.TemporaryDirectory(prefix="stream-derain-bench-") as tmp:
        stages["encode"] = encode_only(items, derained, info, Path(tmp) / "encode.mp4", opts)
        del derained, rainy, items
        pipe = _run_pipeline(backend, path, Path(tmp) / "pipeline.mp4", frames, batch, smoother is not None,
                             strength, opts)
    summary = pipeline_efficiency(pipe["fps"], stages)
    log.info("e2e %s: pipeline %.2f fps, bottleneck %s (%.2f fps), efficiency %s", backend.describe(),
             pipe["fps"], summary["bottleneck"], summary["bottleneck_fps"] or 0, summary["efficiency"])
    return {"input": str(path), "width": info.width, "height": info.height, "batch": batch,
            "encoder": dataclasses.asdict(opts), "stages": stages, "pipeline": pipe, **summary}
