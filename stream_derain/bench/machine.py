"""Where a benchmark ran: CPU, GPU, memory, load, library versions, git revision.

Everything here is best effort and never raises: a missing field is ``None``.
Library versions come from package metadata, so nothing heavy is imported.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..devices import cpu_info

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# library -> distributions that provide it (first installed one wins)
LIBRARIES: dict[str, tuple[str, ...]] = {
    "stream-derain": ("stream-derain",),
    "av": ("av",),
    "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "openvino": ("openvino",),
    "torch": ("torch",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
               "opencv-contrib-python"),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
    "tensorrt_rtx": ("tensorrt-rtx-cu13", "tensorrt-rtx", "tensorrt_rtx_cu13"),
}


THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "CUDA_VISIBLE_DEVICES", "STREAM_DERAIN_ENGINES")


def library_versions() -> dict[str, str | None]:
    """Installed version of each library in :data:`LIBRARIES` (None if absent)."""
    out: dict[str, str | None] = {}
    for lib, dists in LIBRARIES.items():
        out[lib] = None
        for dist in dists:
            try:
                out[lib] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return out


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (how busy the machine was)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else None


def gpu_info() -> list[dict[str, Any]]:
    """One entry per NVIDIA GPU (name, driver, memory): :func:`stream_derain.devices.nvidia_gpus`."""
    from ..devices import nvidia_gpus

    return nvidia_gpus()


def git_revision(root: Path = REPO_ROOT) -> str | None:
    """``git rev-parse HEAD`` of the checkout the package runs from, else None."""
    if not (root / ".git").exists():
        return None
    return _run(["git", "rev-parse", "HEAD"], cwd=root)


def machine_info() -> dict[str, Any]:
    """The machine section of a report."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "hostname": platform.node() or None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_features": cpu_info().features,
        "cpu_native_precisions": cpu_info().native_precisions(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_gb": _mem_total_gb(),
        "load_average": load_average(),
        "gpus": gpu_info(),
        "env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        "libraries": library_versions(),
    }


def device_label(machine: dict[str, Any]) -> str:
    """One line naming the device: the GPU(s) if any, else the CPU and its cores."""
    gpus = machine.get("gpus") or []
    if gpus:
        names = ", ".join(g["name"] for g in gpus)
        return f"{names} (driver {gpus[0].get('driver') or '?'}), CPU {machine.get('cpu_model') or '?'}"
    cores = machine.get("cpu_affinity") or machine.get("cpu_count") or "?"
    return f"CPU only: {machine.get('cpu_model') or 'unknown CPU'}, {cores} cores"
