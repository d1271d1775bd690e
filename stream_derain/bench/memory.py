"""Memory high-water marks of a benchmark case (host and device).

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
import resource
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..devices import cuda_torch

log = logging.getLogger(__name__)

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
