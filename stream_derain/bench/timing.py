"""Timed loops, latency statistics, CPU clocks and the worker thread timed calls run in.

Only the call passed to :func:`measure` is inside the timed region: warm-up calls,
backend activation and input preparation are not. On a CUDA device each timed call
is bracketed by ``torch.cuda.synchronize()`` and CUDA events (GPU time between the
events; since ``Backend.infer`` returns host arrays, that includes the copies); on
the CPU by :func:`time.perf_counter`. Memory high-water marks: :mod:`.memory`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..devices import cuda_torch

log = logging.getLogger(__name__)


class CpuTimer:
    """Wall-clock timing with :func:`time.perf_counter`."""

    kind = "perf_counter"

    def time(self, call: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0


class CudaTimer:
    """CUDA events on the current stream, with a device synchronise before and after."""

    kind = "cuda_events"

    def __init__(self, torch: Any) -> None:
        self.torch = torch

    def time(self, call: Callable[[], Any]) -> float:
        cuda = self.torch.cuda
        cuda.synchronize()
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        cuda.synchronize()
        return start.elapsed_time(end) / 1000.0


def make_timer(device: str) -> CpuTimer | CudaTimer:
    """CUDA events when ``device`` is a CUDA device and torch sees it, else perf_counter."""
    torch = cuda_torch(device)
    return CudaTimer(torch) if torch is not None else CpuTimer()


@dataclass(frozen=True)
class LoopPlan:
    """How many calls to make: ``warmup`` untimed, then ``iters`` timed (0: adaptive)."""

    warmup: int = 2
    iters: int = 0
    budget_s: float = 3.0
    min_iters: int = 5
    max_iters: int = 2000


def measure(call: Callable[[], Any], plan: LoopPlan,
            timer: CpuTimer | CudaTimer | None = None) -> list[float]:
    """Seconds per timed call. Adaptive plans stop once ``budget_s`` of timed work and
    ``min_iters`` calls are done (or at ``max_iters``)."""
    timer = timer or CpuTimer()
    for _ in range(plan.warmup):
        call()
    samples: list[float] = []
    total = 0.0
    while True:
        if plan.iters:
            if len(samples) >= plan.iters:
                break
        elif len(samples) >= plan.max_iters or (total >= plan.budget_s and len(samples) >= plan.min_iters):
            break
        dt = timer.time(call)
        samples.append(dt)
        total += dt
    return samples


def latency_stats(samples: list[float]) -> dict[str, float]:
    """Milliseconds: mean, p50, p95, p99, min, max, std (linear-interpolated percentiles)."""
    a = np.asarray(samples, dtype=np.float64) * 1000.0
    if a.size == 0:
        return {k: float("nan") for k in ("mean", "p50", "p95", "p99", "min", "max", "std")}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"mean": round(float(a.mean()), 3), "p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "p99": round(float(p99), 3), "min": round(float(a.min()), 3), "max": round(float(a.max()), 3),
            "std": round(float(a.std()), 3)}


def run_in_worker(fn: Callable[[], Any], name: str = "stream-derain-bench") -> Any:
    """Run ``fn`` in a fresh thread, as the pipeline runs its stages, and return its result.

    Backends are called from worker threads in the app, never from the thread that
    activated them, so the benchmark activates in one thread and times each case in
    another. torch's CPU inference (OpenMP) is thread-sensitive on a busy machine: it
    was measured 5-15x slower from the main thread than from a worker thread, and
    from one thread to the next in the same process when other processes held the
    cores. Propagates ``fn``'s exception."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.1)
    if "error" in box:
        raise box["error"]
    return box["result"]


# --- CPU use -------------------------------------------------------------------------

def usable_cores() -> int:
    """CPU cores this process may run on (affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Clock:
    """Wall and process-CPU seconds of one timed region; ``sync`` (a device
    synchronise) runs before each reading so queued GPU work is counted."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync or (lambda: None)

    def __enter__(self) -> Clock:
        self.sync()
        self.cpu0, self.t0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sync()
        self.seconds = time.perf_counter() - self.t0
        self.cpu_s = time.process_time() - self.cpu0


def system_cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat (idle and iowait are not busy;
    steal, time the hypervisor gave to others, is); None where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    total = sum(fields[:8])
    return total - fields[3] - (fields[4] if len(fields) > 4 else 0.0), total


class SystemClock(Clock):
    """A :class:`Clock` that also records how busy the whole machine was."""

    def __enter__(self) -> SystemClock:
        self.sys0 = system_cpu_times()
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        end = system_cpu_times()
        self.system_busy = None
        if self.sys0 is not None and end is not None and end[1] > self.sys0[1]:
            self.system_busy = (end[0] - self.sys0[0]) / (end[1] - self.sys0[1])

    def as_dict(self, cores: int) -> dict[str, Any]:
        """Cores used by this process and by everything else, and the machine's busy fraction."""
        ours = self.cpu_s / self.seconds if self.seconds > 0 else None
        machine = os.cpu_count() or cores
        others = None
        if self.system_busy is not None and ours is not None:
            others = max(self.system_busy * machine - ours, 0.0)
        return {"cpu_s": round(self.cpu_s, 4), "cpu_util": None if ours is None else round(ours, 3),
                "system_cpu_busy": None if self.system_busy is None else round(self.system_busy, 3),
                "other_processes_cores": None if others is None else round(others, 2)}
