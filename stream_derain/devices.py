"""What this machine can run: CPU instruction-set features and CUDA, detected in one place.

Everything here is cheap (no torch, OpenVINO or TensorRT import unless asked for
CUDA through torch), cached per process, and never raises: a feature that cannot
be read counts as absent. CPU features come from the ``flags`` line of
``/proc/cpuinfo`` (``Features`` on ARM), falling back to ``lscpu``.

The native precisions say which reduced precisions the CPU computes in hardware,
which is what makes them fast: bf16 needs AMX-BF16 (Sapphire Rapids and later) or
AVX-512 BF16 (Cooper Lake, Zen 4); fp16 needs AMX-FP16 (Granite Rapids) or ARM's
half-precision SIMD. AVX-512 FP16 alone converts fast but OpenVINO computes f16
slower than f32 with it (measured: 6.4 vs 8.0 fps at 640x360), so it does not count.
INT8 needs 8-bit dot products (:meth:`CpuInfo.int8_units`: AMX-INT8, AVX-512 VNNI,
AVX-VNNI, ARM dot product / i8mm); without them INT8 convolutions gain little over fp32.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

# feature name -> the /proc/cpuinfo flags that provide it (any one)
FEATURES: dict[str, tuple[str, ...]] = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "avx512_vnni": ("avx512_vnni",),
    "avx_vnni": ("avx_vnni",),
    "avx512_bf16": ("avx512_bf16",),
    "avx512_fp16": ("avx512_fp16",),
    "amx_bf16": ("amx_bf16",),
    "amx_fp16": ("amx_fp16",),
    "amx_int8": ("amx_int8",),
    "neon_fp16": ("asimdhp", "fphp"),  # aarch64 half-precision arithmetic
    "neon_dotprod": ("asimddp",),  # aarch64 8-bit dot products (SDOT/UDOT)
    "neon_i8mm": ("i8mm",),  # aarch64 8-bit matrix multiply
}
# the units that compute 8-bit dot products (what makes INT8 inference fast), best first
INT8_UNITS = ("amx_int8", "avx512_vnni", "avx_vnni", "neon_i8mm", "neon_dotprod")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as the backends see it."""

    model: str | None
    vendor: str | None
    arch: str
    cores: int | None
    flags: frozenset[str]

    def has(self, feature: str) -> bool:
        """Whether ``feature`` (a key of :data:`FEATURES`) is present."""
        return any(f in self.flags for f in FEATURES.get(feature, (feature,)))

    @property
    def features(self) -> list[str]:
        return [name for name in FEATURES if self.has(name)]

    def native_precisions(self) -> list[str]:
        """Precisions computed in hardware, fastest first; fp32 always last."""
        out = []
        if self.has("amx_fp16") or self.has("neon_fp16"):
            out.append("fp16")
        if self.has("amx_bf16") or self.has("avx512_bf16"):
            out.append("bf16")
        return [*out, "fp32"]

    def int8_units(self) -> list[str]:
        """The 8-bit dot-product units of this CPU (AMX-INT8, AVX-512 VNNI, AVX-VNNI, ARM
        dot product / i8mm), best first; empty: INT8 inference gains little here."""
        return [u for u in INT8_UNITS if self.has(u)]

    @property
    def int8_dot(self) -> bool:
        """Whether the CPU has 8-bit dot products (what ``auto`` needs to choose int8)."""
        return bool(self.int8_units())

    def precision_reason(self, precision: str) -> str:
        """Why ``precision`` is native here, in words (for logs and reports)."""
        units = {"bf16": ("amx_bf16", "avx512_bf16"), "fp16": ("amx_fp16", "neon_fp16"),
                 "int8": INT8_UNITS}.get(precision, ())
        have = [u.upper().replace("_", "-") for u in units if self.has(u)]
        if have:
            what = "8-bit dot products" if precision == "int8" else precision
            return f"{what} in hardware ({', '.join(have)})"
        if precision == "int8":
            return "no 8-bit dot-product units (VNNI, AMX-INT8) on this CPU"
        return f"no {precision} units on this CPU" if precision != "fp32" else "fp32 (no bf16/fp16 units)"

    def describe(self) -> str:
        features = ", ".join(self.features) or "no SIMD flags read"
        return f"{self.model or 'unknown CPU'} ({self.arch}; {features})"


def _cpuinfo_text() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _lscpu_text() -> str:
    if shutil.which("lscpu") is None:
        return ""
    try:
        res = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout if res.returncode == 0 else ""


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The first value of each ``key: value`` field of /proc/cpuinfo or lscpu output,
    keys lower-cased (``model name``, ``flags``, ``vendor_id``, ``features``...)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key and key not in out:
            out[key] = value.strip()
    return out


def cpu_from_text(text: str, arch: str | None = None, cores: int | None = None) -> CpuInfo:
    """A :class:`CpuInfo` from /proc/cpuinfo (or lscpu) text; used by tests too."""
    fields = parse_cpuinfo(text)
    flags = fields.get("flags") or fields.get("features") or ""
    model = fields.get("model name") or fields.get("hardware") or fields.get("cpu model") or None
    vendor = fields.get("vendor_id") or fields.get("vendor id") or None
    return CpuInfo(model=model, vendor=vendor, arch=arch or platform.machine() or "unknown", cores=cores,
                   flags=frozenset(flags.lower().split()))


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (cached)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    info = cpu_from_text(_cpuinfo_text(), cores=cores)
    if not info.flags:  # no /proc (containers without it, other OSes): lscpu knows the flags too
        alt = cpu_from_text(_lscpu_text(), cores=cores)
        info = alt if alt.flags else info
    log.debug("cpu: %s", info.describe())
    return info


def nvidia_driver_present() -> bool:
    """Cheap probe (no torch import): is an NVIDIA kernel driver loaded?"""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def has_module(module: str) -> bool:
    """Whether ``module`` is installed, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked install counts as absent
        return False


def torch_cuda() -> bool:
    """An NVIDIA driver is loaded and torch (installed) sees a CUDA device."""
    if not has_module("torch") or not nvidia_driver_present():
        return False
    import torch

    return bool(torch.cuda.is_available())


def gpu_visible() -> bool:
    """An NVIDIA driver is loaded and torch, if installed, sees a CUDA device (without
    torch the driver alone counts: TensorRT and onnxruntime-gpu need no torch to see it)."""
    if not nvidia_driver_present():
        return False
    return torch_cuda() if has_module("torch") else True


def cuda_torch(device: str = "cuda") -> ModuleType | None:
    """The torch module when ``device`` names a CUDA device and torch (installed) sees a
    GPU, else None. Asks torch only (no driver probe): for code about to run on torch."""
    if not str(device).startswith("cuda"):
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else None


def nvidia_gpus() -> list[dict[str, Any]]:
    """One entry per NVIDIA GPU (name, driver, memory) from nvidia-smi, else torch; [] without
    a driver. For reports: never raises."""
    if not nvidia_driver_present():
        return []
    text = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if text:
        gpus = []
        for line in text.splitlines():
            name, driver, mem = (part.strip() for part in line.split(",", 2))
            gpus.append({"name": name, "driver": driver, "memory": mem, "source": "nvidia-smi"})
        return gpus
    try:
        torch = cuda_torch()
        if torch is not None:
            return [{"name": torch.cuda.get_device_name(i), "driver": None,
                     "memory": f"{torch.cuda.get_device_properties(i).total_memory // 2**20} MiB",
                     "cuda": torch.version.cuda, "source": "torch"} for i in range(torch.cuda.device_count())]
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install must not break the report
        log.debug("torch CUDA probe failed: %s", exc)
    return []
