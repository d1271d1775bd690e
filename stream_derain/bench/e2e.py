"""End-to-end mode: the full decode -> infer -> smooth -> encode pipeline on a real
file, and each stage alone on the same frames in the same run.

Isolated stages (wall clock, :func:`time.perf_counter`):

- decode: :class:`VideoReader` over the file, frames kept in memory;
- infer: ``backend.infer`` over those frames (after one untimed warm-up call);
- smooth: the temporal smoother over the (derained, rainy) pairs in memory;
- encode: :class:`VideoWriter` writing the derained frames to a temporary file
  (including the final flush, which is where x264 emits its look-ahead frames).

Each stage runs the code the pipeline runs: where the pipeline keeps frames on the
backend's device (``infer_tensor`` backends: TensorRT, torch on CUDA), "infer" is the
pipeline's :class:`~stream_derain.stages.DeviceInferStage` (upload, pad, engine),
"smooth" is the torch smoother on that device and a fifth stage, "download", brings
the frames back for the encoder; device work is synchronised before each clock read.

``efficiency = pipeline fps / fps of the slowest isolated stage``: 1.0 means the
threads overlap perfectly. Stages share the CPU in the pipeline but not alone, so
when inference runs on the CPU (and already uses every core) the pipeline cannot
reach the slowest stage's fps. To tell that apart from stages serialising (on the
GIL, or through too small queues), each stage's CPU time is measured too
(:func:`time.process_time`): ``cpu_bound_fps = cores / sum of CPU seconds per frame``
is what the stages can reach together on the cores this process may use, and
``overlap = pipeline fps / min(slowest stage fps, cpu_bound_fps)`` is near 1.0 when
the threads overlap as well as the hardware allows.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..derain import DerainConfig, derain_video
from ..devices import cuda_torch
from ..io.video import EncodeOptions, FrameItem, VideoReader, VideoWriter
from ..smooth.core import DEFAULT_STRENGTH
from ..stages import DeviceInferStage, DownloadStage, make_smoother, uses_device_frames
from .config import EFFICIENCY_TARGET
from .engine import error_reason
from .timing import Clock, MemoryProbe, SystemClock, run_in_worker, usable_cores

log = logging.getLogger(__name__)
STAGES = ("decode", "infer", "smooth", "encode")  # plus "download" on the device-frame path
SATURATED = 0.9  # machine-wide busy fraction above which the CPU counts as saturated


def _stage(frames: int, clock: Clock) -> dict[str, Any]:
    seconds = clock.seconds
    fps = frames / seconds if seconds > 0 else 0.0
    return {"status": "ok", "reason": None, "frames": frames, "seconds": round(seconds, 4),
            "fps": round(fps, 3), "cpu_s": round(clock.cpu_s, 4),
            "cpu_ms_per_frame": round(1000 * clock.cpu_s / frames, 3) if frames else None}


def device_sync(backend: Backend) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` for a backend on a CUDA device torch can see, else None."""
    torch = cuda_torch(str(backend.device))
    return torch.cuda.synchronize if torch is not None else None


def decode_only(path: Path, frames: int | None) -> tuple[dict[str, Any], list[FrameItem], Any]:
    """Decode the file (at most ``frames`` frames) into memory; also returns its VideoInfo."""
    with Clock() as clock:
        reader = VideoReader(path, 0, frames)
        try:
            items = [it for it in reader.items() if isinstance(it, FrameItem)]
        finally:
            reader.close()
    return _stage(len(items), clock), items, reader.info


def infer_only(backend: Backend, images: list[np.ndarray], batch: int,
               warmup: int = 2) -> tuple[dict[str, Any], list[np.ndarray]]:
    """``backend.infer`` over frames held in memory, ``batch`` at a time, after
    ``warmup`` untimed calls at this frame size (first-call allocations, lazy init)."""
    first = np.stack(images[:batch])
    for _ in range(max(warmup, 1)):
        backend.infer(first)
    out: list[np.ndarray] = []
    with Clock(device_sync(backend)) as clock:
        for i in range(0, len(images), batch):
            out.extend(backend.infer(np.stack(images[i:i + batch])))
    return _stage(len(images), clock), out


def infer_only_device(backend: Backend, items: list[FrameItem], batch: int, keep_input: bool,
                      warmup: int = 2) -> tuple[dict[str, Any], list[FrameItem]]:
    """The pipeline's device infer stage (upload, pad, ``infer_tensor``, to uint8) over
    frames held in host memory, ``batch`` at a time; returns copies of the items whose
    ``image`` (and ``rainy``) are now 3xHxW device tensors."""
    stage = DeviceInferStage(threading.Event(), queue.Queue(), queue.Queue(), backend, batch, keep_input)
    for _ in range(max(warmup, 1)):
        stage.infer_group([dataclasses.replace(it) for it in items[:batch]])
    out: list[FrameItem] = []
    with Clock(device_sync(backend)) as clock:
        for i in range(0, len(items), batch):
            group = [dataclasses.replace(it) for it in items[i:i + batch]]  # infer_group works in place
            stage.infer_group(group)
            out.extend(group)
    return _stage(len(items), clock), out


def smooth_only(smoother: Any, derained: list[Any], rainy: list[Any],
                sync: Callable[[], None] | None = None) -> tuple[dict[str, Any], list[Any]]:
    """The smoother over (derained, rainy) pairs in memory (numpy frames, or device
    tensors for the torch smoother); returns its outputs too."""
    smoother.reset()
    with Clock(sync) as clock:
        out = [smoother(d, r) for d, r in zip(derained, rainy)]
    return _stage(len(derained), clock), out


def download_only(frames: list[Any], sync: Callable[[], None] | None = None
                  ) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The pipeline's download stage: 3xHxW device tensors -> HxWx3 uint8 numpy."""
    stage = DownloadStage(threading.Event(), queue.Queue(), queue.Queue())
    with Clock(sync) as clock:
        out = [stage.work(FrameItem(i, None, None, t))[0].image for i, t in enumerate(frames)]
    return _stage(len(frames), clock), out


def encode_only(items: list[FrameItem], derained: list[np.ndarray], info: Any, out: Path,
                opts: EncodeOptions) -> dict[str, Any]:
    """Encode the derained frames (with the source's timestamps) to ``out``."""
    writer = VideoWriter(out, dataclasses.replace(info, copy_streams=[]), opts)
    with Clock() as clock:
        try:
            for it, img in zip(items, derained):
                writer.write_frame(FrameItem(it.index, it.pts, it.time_base, img))
        finally:
            writer.close()
    return _stage(len(derained), clock)


def pipeline_efficiency(pipeline_fps: float, stages: dict[str, dict[str, Any]], cores: int | None = None,
                        system: dict[str, Any] | None = None) -> dict[str, Any]:
    """The slowest stage that ran (the bottleneck), ``pipeline fps / its fps``, and the
    CPU-bound ceiling of the stages together on ``cores`` (see the module docstring).
    ``system``: the pipeline's ``system_cpu_busy``, ``cpu_util`` and ``other_processes_cores``,
    which tell a CPU saturated during the run (by this process or others) apart from
    stages that wait for each other while cores sit idle."""
    ran = {name: s["fps"] for name, s in stages.items() if s.get("status") == "ok" and s.get("fps")}
    out: dict[str, Any] = {"bottleneck": None, "bottleneck_fps": None, "efficiency": None,
                           "efficiency_target": EFFICIENCY_TARGET, "meets_target": None, "cpu_cores": cores,
                           "steady_efficiency": None, "cpu_ms_per_frame": None, "cpu_bound_fps": None,
                           "overlap": None, "diagnosis": None, "warning": None}
    if not ran:
        return out
    name = min(ran, key=ran.get)
    eff = pipeline_fps / ran[name]
    out.update(bottleneck=name, bottleneck_fps=ran[name], efficiency=round(eff, 3),
               meets_target=eff >= EFFICIENCY_TARGET)
    steady = (system or {}).get("steady_fps")
    if steady:
        out["steady_efficiency"] = round(steady / ran[name], 3)
    cpu = [stages[n].get("cpu_ms_per_frame") for n in ran]
    ceiling = ran[name]
    if cores and all(isinstance(c, (int, float)) and c > 0 for c in cpu):
        total = float(sum(cpu))
        bound = 1000.0 * cores / total
        ceiling = min(ceiling, bound)
        out.update(cpu_ms_per_frame=round(total, 3), cpu_bound_fps=round(bound, 3),
                   overlap=round(pipeline_fps / ceiling, 3))
    out["diagnosis"] = _diagnosis(pipeline_fps, name, ran[name], out, system or {})
    if eff > 1.1:
        out["warning"] = (f"pipeline faster than {name} alone: the isolated measurement was disturbed "
                          "(shared CPU) or the backend is thread-sensitive (OpenMP spin-waiting: try "
                          "OMP_WAIT_POLICY=PASSIVE)")
    return out


def _diagnosis(pipeline_fps: float, name: str, fps: float, res: dict[str, Any],
               system: dict[str, Any]) -> str:
    """One sentence: do the stages overlap, and if not, is it the input's length, the CPU
    (this process's stages or other processes) or the pipeline itself?"""
    eff, bound, overlap = res["efficiency"], res["cpu_bound_fps"], res["overlap"]
    if eff >= EFFICIENCY_TARGET:
        return f"stages overlap: the pipeline runs at {eff:.2f} of the slowest stage ({name})"
    steady = res.get("steady_efficiency")
    if steady is not None and steady >= EFFICIENCY_TARGET:
        return (f"stages overlap: {steady:.2f} of {name} alone while frames flow; over this short input the "
                f"start-up ({system.get('startup_s') or 0:.2f} s) and the drain after the last frame "
                f"({system.get('drain_s') or 0:.2f} s: the encoder's look-ahead frames) bring it to "
                f"{eff:.2f}")
    busy, others = system.get("system_cpu_busy"), system.get("other_processes_cores")
    if busy is not None and busy >= SATURATED:
        text = (f"CPU-bound: every core was busy during the pipeline ({busy:.0%}; this process used "
                f"{system.get('cpu_util') or 0:.2f} cores, other processes {others or 0:.2f})")
        if bound is not None:
            text += (f"; the stages need {res['cpu_ms_per_frame']:.1f} ms of CPU per frame alone")
            if system.get("cpu_ms_per_frame"):
                text += f" and {system['cpu_ms_per_frame']:.1f} ms in the pipeline"
            text += (f", so {res['cpu_cores']} cores allow at most {bound:.1f} fps; the pipeline reaches "
                     f"{overlap:.2f} of the lower of that and {name} alone")
        if others and others >= 0.25:
            text += "; other processes took cores: measure on an idle machine"
        return text
    if bound is not None and bound < EFFICIENCY_TARGET * fps:
        text = (f"CPU-bound: the stages need {res['cpu_ms_per_frame']:.1f} ms of CPU per frame together, so "
                f"{res['cpu_cores']} cores allow at most {bound:.1f} fps, below {name} alone "
                f"({fps:.1f} fps); "
                f"the pipeline reaches {overlap:.2f} of that ceiling")
        if overlap is not None and overlap < EFFICIENCY_TARGET:
            text += " (below the target too: stages may be serialising)"
        return text
    return (f"stages do not overlap fully: the pipeline runs at {eff:.2f} of {name} alone, and the CPU "
            "is not the limit (look at the queue waits: GIL-bound work, small queues or a shared device)")


def _try_smoother(factory: Callable[..., Any], strength: float, device: str | None = None
                  ) -> tuple[Any, str | None]:
    try:
        return (factory(strength) if device is None else factory(strength, device)), None
    except Exception as exc:  # noqa: BLE001 - ImportError while smooth/ is being written, etc.
        return None, error_reason(exc)


def _busy_estimate(stats: dict[str, Any], seconds: float, source: bool, frames: int) -> dict[str, Any]:
    """Add ``busy_est_s`` and ``fps_in_pipeline`` (video frames per busy second) to a
    StageStats dict (whose ``items`` also count copied audio/subtitle packets).

    The source's ``busy_s`` times its generator and is exact. For ``work()`` stages,
    ``busy_s`` only covers iterating the list that ``work`` already returned, so the
    busy time is estimated as the stage's wall time minus its queue waits (its thread
    lives about as long as the pipeline); ``max`` keeps a correct ``busy_s`` if the
    stage ever measures it.
    """
    waits = stats["wait_in_s"] + stats["wait_out_s"]
    busy = stats["busy_s"] if source else max(stats["busy_s"], seconds - waits)
    stats["busy_est_s"] = round(busy, 4)
    stats["fps_in_pipeline"] = round(frames / busy, 3) if busy > 0 else None
    return stats


class ArrivalClock:
    """Progress callback of :func:`derain_video`: when each frame reached the encoder.

    The steady-state rate (frames between the first and the last arrival) leaves out
    the start-up (the first frame crossing every stage) and the drain after the last
    frame (x264 encodes the frames of its look-ahead window only when it is flushed),
    which weigh on a clip of a few seconds but not on a long video."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.times: list[float] = []

    def __call__(self, done: int, total: int) -> None:
        self.times.append(time.perf_counter())

    def as_dict(self, end: float) -> dict[str, Any]:
        t = self.times
        if len(t) < 2 or t[-1] <= t[0]:
            return {"steady_fps": None, "startup_s": None, "drain_s": None}
        return {"steady_fps": round((len(t) - 1) / (t[-1] - t[0]), 3), "startup_s": round(t[0] - self.t0, 4),
                "drain_s": round(end - t[-1], 4)}


def _run_pipeline(backend: Backend, path: Path, out: Path, frames: int | None, batch: int, smooth: bool,
                  strength: float, opts: EncodeOptions, device_frames: bool) -> dict[str, Any]:
    cfg = DerainConfig(input=path, output=out, batch=batch, max_frames=frames, overwrite=True, smooth=smooth,
                       smooth_strength=strength, encode=opts, device_frames=device_frames)
    with MemoryProbe(backend.device) as mem, SystemClock(device_sync(backend)) as clock:
        arrivals = ArrivalClock()
        res = derain_video(cfg, backend, arrivals)
        end = time.perf_counter()
    stats = [_busy_estimate(s.as_dict(), res.seconds, i == 0, res.frames) for i, s in enumerate(res.stages)]
    busiest = max(stats[1:], key=lambda s: s["queue_mean"]) if len(stats) > 1 else None
    return {"frames": res.frames, "seconds": round(res.seconds, 4), "fps": round(res.fps, 3),
            **arrivals.as_dict(end),
            "smooth": smooth, "device_frames": device_frames, "queue_size": cfg.queue_size,
            **clock.as_dict(usable_cores()),
            "cpu_ms_per_frame": round(1000 * clock.cpu_s / res.frames, 3) if res.frames else None,
            "stages": stats,
            "frames_wait_before": busiest["name"] if busiest and busiest["queue_mean"] > 0 else None,
            **mem.as_dict()}


def run_e2e(backend: Backend, path: Path, frames: int | None, batch: int = 1, smooth: bool = True,
            strength: float = DEFAULT_STRENGTH, smoother_factory: Callable[..., Any] = make_smoother,
            opts: EncodeOptions | None = None, warmup: int = 2,
            device_frames: bool | None = None) -> dict[str, Any]:
    """Isolated stage throughputs and the full pipeline on ``path``; the backend must be active.

    ``device_frames`` as in :class:`DerainConfig` (None: on a CUDA backend that takes
    device tensors); the isolated stages follow the same path as the pipeline."""
    opts = opts or EncodeOptions()
    on_device = uses_device_frames(backend, device_frames)
    sync = device_sync(backend)
    stages: dict[str, dict[str, Any]] = {}
    stages["decode"], items, info = decode_only(path, frames)
    if not items:
        raise ValueError(f"no frames decoded from {path}")
    rainy = [it.image for it in items]
    smoother_device = (backend.device if backend.device != "cpu" else "torch-cpu") if on_device else None
    smoother, why = _try_smoother(smoother_factory, strength, smoother_device) if smooth \
        else (None, "disabled (--no-smooth)")
    if on_device:
        stages["infer"], dev_items = run_in_worker(
            partial(infer_only_device, backend, items, batch, smoother is not None, warmup))
        derained = [it.image for it in dev_items]
        if smoother is not None:
            rainy_dev = [it.rainy for it in dev_items]
            stages["smooth"], derained = run_in_worker(
                partial(smooth_only, smoother, derained, rainy_dev, sync))
        del dev_items
        stages["download"], derained = download_only(derained, sync)
    else:
        stages["infer"], derained = run_in_worker(partial(infer_only, backend, rainy, batch, warmup))
        if smoother is not None:
            stages["smooth"], derained = run_in_worker(partial(smooth_only, smoother, derained, rainy))
    if smoother is None:
        stages["smooth"] = {"status": "unavailable" if smooth else "disabled", "reason": why, "fps": None}
        log.warning("smoother not measured and not in the pipeline: %s", why)
    with tempfile.TemporaryDirectory(prefix="stream-derain-bench-") as tmp:
        stages["encode"] = encode_only(items, derained, info, Path(tmp) / "encode.mp4", opts)
        del derained, rainy, items
        pipe = _run_pipeline(backend, path, Path(tmp) / "pipeline.mp4", frames, batch, smoother is not None,
                             strength, opts, on_device)
    summary = pipeline_efficiency(pipe["fps"], stages, usable_cores(), pipe)
    log.info("e2e %s: pipeline %.2f fps, bottleneck %s (%.2f fps), efficiency %s; %s", backend.describe(),
             pipe["fps"], summary["bottleneck"], summary["bottleneck_fps"] or 0, summary["efficiency"],
             summary["diagnosis"])
    return {"input": str(path), "width": info.width, "height": info.height, "batch": batch,
            "encoder": dataclasses.asdict(opts), "stages": stages, "pipeline": pipe, **summary}
