"""Engine-only mode: ``backend.infer`` on synthetic frames, per resolution and batch.

The timed call is exactly ``backend.infer(batch)`` (uint8 NxHxWx3 in and out, so it
includes the backend's pre/post-processing and host<->device copies; a K-frame model
takes NxHxWx(3K) windows of K different frames); the input is made before timing
starts and activation happened before this module is called.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..backends.base import Backend, model_frames
from .memory import MemoryProbe
from .timing import LoopPlan, SystemClock, latency_stats, make_timer, measure, run_in_worker, usable_cores

log = logging.getLogger(__name__)


def synthetic_batch(width: int, height: int, batch: int, seed: int = 0, frames: int = 1) -> np.ndarray:
    """Deterministic NxHxWx3 uint8 frames (noise over a gradient, like busy video);
    NxHxWx(3K) windows of K frames for a ``frames``-frame model."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 160, width, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(ramp, (height, width, 3 * frames))
    noise = rng.integers(0, 96, size=(batch, height, width, 3 * frames), dtype=np.uint8)
    return (base[None] + noise).clip(0, 255).astype(np.uint8)


def case_key(width: int, height: int, batch: int) -> dict[str, Any]:
    return {"resolution": f"{width}x{height}", "width": width, "height": height, "batch": batch}


def failed_case(variant: dict[str, Any], width: int, height: int, batch: int, status: str,
                reason: str) -> dict[str, Any]:
    """A row for a case that did not run (its variant failed or was skipped, or it failed)."""
    return {**variant, **case_key(width, height, batch), "status": status, "reason": reason}


def time_infer(backend: Backend, frames: np.ndarray, plan: LoopPlan
               ) -> tuple[list[float], dict[str, Any], dict[str, Any]]:
    """Timed ``backend.infer`` calls on ``frames``: (seconds per call, the process's CPU
    use with warm-up included and wall seconds, peak memory and the timer's kind).

    Warm-up and timed calls run in a fresh thread, as the pipeline's infer stage does
    (see :func:`.timing.run_in_worker`)."""
    timer = make_timer(backend.device)
    with MemoryProbe(backend.device) as mem, SystemClock() as clock:
        samples = run_in_worker(lambda: measure(lambda: backend.infer(frames), plan, timer),
                                name="stream-derain-bench-infer")
    return samples, {"seconds": clock.seconds, **clock.as_dict(usable_cores())}, \
        {**mem.as_dict(), "timer": timer.kind}


def timed_row(width: int, height: int, batch: int, plan: LoopPlan, samples: list[float], cpu_s: float,
              cpu_util: float | None, others: float | None, extra: dict[str, Any]) -> dict[str, Any]:
    """A case's row from its timed calls and the CPU they used (``extra`` is appended)."""
    seconds = float(sum(samples))
    fps = batch * len(samples) / seconds if seconds > 0 else 0.0
    return {**case_key(width, height, batch), "status": "ok", "reason": None, "warmup": plan.warmup,
            "iters": len(samples), "timed_s": round(seconds, 4), "fps": round(fps, 3),
            "latency_ms": latency_stats(samples), "mpix_per_s": round(fps * width * height / 1e6, 3),
            "cpu_util": cpu_util, "other_processes_cores": others,
            # process CPU per frame (warm-up calls included): what a frame costs whatever else runs
            "cpu_ms_per_frame": round(1000 * cpu_s / (batch * (len(samples) + plan.warmup)), 2), **extra}


def engine_case(backend: Backend, width: int, height: int, batch: int, plan: LoopPlan,
                seed: int = 0) -> dict[str, Any]:
    """Time ``backend.infer`` on one synthetic batch; the backend must be active."""
    frames = synthetic_batch(width, height, batch, seed, model_frames(backend))
    samples, cpu, extra = time_infer(backend, frames, plan)
    row = timed_row(width, height, batch, plan, samples, cpu["cpu_s"], cpu["cpu_util"],
                    cpu["other_processes_cores"], extra)
    log.info("engine %s %dx%d batch %d: %.2f fps, p50 %.1f ms (%d iters)", backend.describe(), width,
             height, batch, row["fps"], row["latency_ms"]["p50"], len(samples))
    return row


def run_engine(backend: Backend, variant: dict[str, Any], resolutions: tuple[tuple[int, int], ...],
               batches: tuple[int, ...], plan: LoopPlan, seed: int = 0) -> list[dict[str, Any]]:
    """Every (resolution, batch) case for one active backend; a failing case (e.g. out of
    memory at a large size) is recorded as failed and the others still run."""
    rows = []
    for width, height in resolutions:
        for batch in batches:
            try:
                row = engine_case(backend, width, height, batch, plan, seed)
            except Exception as exc:  # noqa: BLE001 - reported in the table, never dropped
                log.warning("engine %s %dx%d batch %d failed: %s", variant.get("variant"), width, height,
                            batch, exc)
                row = failed_case({}, width, height, batch, "failed", error_reason(exc))
            rows.append({**variant, **row})
    return rows


def error_reason(exc: BaseException) -> str:
    """``Type: first line of the message`` for tables and JSON."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
