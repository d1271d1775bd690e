"""Timed loops, latency statistics and memory high-water marks.

Only the call passed to :func:`measure` is inside the timed region: warm-up calls,
backend activation and input preparation are not. On a CUDA device each timed call
is bracketed by ``torch.cuda.synchronize()`` and CUDA events (GPU time between the
events; since ``Backend.infer`` returns host arrays, that includes the copies); on
the CPU by :func:`time.perf_counter`.

Host memory: ``VmHWM`` (peak resident set) from ``/proc/self/status``. Linux lets a
process reset it (``5`` to ``/proc/self/clear_refs``), which makes it a per-case peak;
where that is not possible the value is the process-lifetime peak and is labelled so
(``scope: "process"``). Device memory, two figures: ``torch.cuda.max_memory_allocated``
after a reset, which sees only allocations made through torch's caching allocator
(the torch backend, TensorRT's I/O buffers), and the peak of the device-wide used
memory (``cudaMemGetInfo``, polled by a thread every few milliseconds), which also
sees ONNX Runtime's and TensorRT's own allocations, the CUDA context and any other
process on the same GPU.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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



# --- memory ----------------------------------------------------------------------------

_STATUS = Path("/proc/self/status")


def reset_host_peak() -> bool:
    """Reset the process's peak-RSS mark; False where the OS does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def host_peak_mb() -> float:
    """Peak resident set in MiB: VmHWM, or getrusage's ru_maxrss (process lifetime)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0, 1)


class PeakSampler:
    """Polls ``read()`` (bytes in use) in a daemon thread until :meth:`stop`; keeps the peak."""

    def __init__(self, read: Callable[[], int], interval: float = 0.005) -> None:
        self.read, self.interval = read, interval
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="stream-derain-mem", daemon=True)

    def _sample(self) -> None:
        try:
            self.peak = max(self.peak, int(self.read()))
        except Exception as exc:  # noqa: BLE001 - a failing probe must not fail the benchmark
            log.debug("memory probe failed: %s", exc)
            self._done.set()

    def _poll(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()

    def start(self) -> PeakSampler:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> int:
        self._sample()
        self._done.set()
        self._thread.join(timeout=1.0)
        return self.peak


def device_used_reader(torch: Any, device: str) -> Callable[[], int]:
    """Bytes in use on ``device`` by every process (``total - free`` from cudaMemGetInfo)."""
    dev = torch.device(device)

    def read() -> int:
        free, total = torch.cuda.mem_get_info(dev)
        return total - free

    return read


class MemoryProbe:
    """Peak host (and, on CUDA, device) memory over one measured case."""

    def __init__(self, device: str) -> None:
        torch = cuda_torch(device)
        self.cuda = torch.cuda if torch is not None else None
        self.sampler = PeakSampler(device_used_reader(torch, device)) if torch is not None else None
        self.scope = "process"
        self.host_mb: float | None = None
        self.device_mb: float | None = None
        self.device_used_mb: float | None = None

    def __enter__(self) -> MemoryProbe:
        self.scope = "case" if reset_host_peak() else "process"
        if self.cuda is not None:
            self.cuda.synchronize()
            self.cuda.reset_peak_memory_stats()
        if self.sampler is not None:
            self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.host_mb = host_peak_mb()
        if self.cuda is not None:
            self.cuda.synchronize()
            self.device_mb = round(self.cuda.max_memory_allocated() / 2**20, 1)
        if self.sampler is not None:
            self.device_used_mb = round(self.sampler.stop() / 2**20, 1) or None

    def as_dict(self) -> dict[str, Any]:
        cuda = self.cuda is not None
        return {"peak_host_rss_mb": self.host_mb, "host_peak_scope": self.scope,
                "peak_device_mem_mb": self.device_mb,
                "device_mem_source": "torch.cuda.max_memory_allocated" if cuda else None,
                "peak_device_used_mb": self.device_used_mb,
                "device_used_source": "cudaMemGetInfo total-free, device-wide (all processes)" if cuda
                else None}
