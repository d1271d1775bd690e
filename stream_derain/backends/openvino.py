"""OpenVINO backend: the shipped ONNX read directly, compiled for the CPU at a chosen precision.

``precision`` is ``fp32``, ``bf16``, ``fp16``, ``int8`` or ``auto``. ``int8`` runs the
model's INT8 file made by ``stream-derain quantize``: its OpenVINO IR (``files.int8_openvino``,
``<name>.int8.xml``) where the manifest lists one, else the QDQ ONNX file
(``<name>.int8.onnx``); the quantized convolutions run in INT8, the layers kept out of
quantization in f32. ``auto`` takes int8 where the CPU has 8-bit dot products
(:meth:`stream_derain.devices.CpuInfo.int8_units`) and the manifest says the INT8 file
passed its quality gate on OpenVINO (:func:`stream_derain.catalog.int8_passed`), and
otherwise the fastest precision the CPU computes in hardware
(:meth:`stream_derain.devices.CpuInfo.native_precisions`: bf16 with AMX or AVX-512 BF16,
fp16 with AMX-FP16) whose output stays within :data:`MIN_PSNR_DB` of FP32 on a check
frame, else FP32. Every reduced precision,
asked for or chosen, is checked against an FP32 compile of the same model at
activation (a few milliseconds); :attr:`OpenVINOBackend.precision_check` holds the
result and :attr:`precision` the precision OpenVINO actually compiled for.

Compiled models are cached in ``<engines cache folder>/openvino/<precision>``
(OpenVINO's ``CACHE_DIR``), so compilation happens once per model, precision and
OpenVINO version; :attr:`loaded_from_cache` says whether this activation reused it.
Compiles into one folder are serialised across processes by a file lock beside the blobs:
OpenVINO 2026.4 writes a blob in place, and a second process compiling the same model at
the same time read it half-written (a compile error, or SIGBUS; measured with four
processes, as a Ray batch on one node starts them). A blob left truncated by a killed
process OpenVINO itself recompiles over (measured).
One folder per precision because OpenVINO 2026.4's cache key leaves the precision
hint out: an f16 compile found the f32 blob and silently ran f32 (measured). openvino
is an optional extra, imported only on activation.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import OPENVINO_INT8, ModelInfo, cache_dir, int8_passed
from ..devices import cpu_info
from ..errors import BackendError, require
from ..metrics import psnr
from .base import Backend, Capabilities

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# int8: the quantized convolutions run in INT8 whatever the hint; the layers kept out of
# quantization run at the hint (f32: OpenVINO 2026.4 cannot compile the QDQ ONNX file with
# bf16; the IR it can, but its f32 layers are the output's, kept out for accuracy)
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
FROM_HINT = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "f16": "fp16",
             "float16": "fp16"}
CAPABILITY = {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}  # OpenVINO's OPTIMIZATION_CAPABILITIES names
MIN_PSNR_DB = 50.0
# int8 against fp32 on the synthetic check frame: a sanity check only (a broken file or
# runtime); the quality gate is the manifest's, on the dev frames (stream_derain.quantize)
MIN_PSNR_INT8_DB = 30.0
CHECK_SIZE = (96, 160)  # H, W of the check frame
COMPILE_LOCK = ".compile.lock"  # in each cache folder: one process compiles into it at a time
COMPILE_LOCK_TIMEOUT_S = 300.0  # a compile takes seconds; a lock held longer is a stuck process


def openvino_version() -> str | None:
    """The installed OpenVINO version (package metadata; nothing imported), else None."""
    try:
        return md.version("openvino")
    except md.PackageNotFoundError:
        return None


def check_frame(height: int = CHECK_SIZE[0], width: int = CHECK_SIZE[1]) -> np.ndarray:
    """A deterministic 1x3xHxW float32 rainy-looking frame in [0, 1]: gradients, texture
    and bright streaks, so that reduced precision is judged on the kind of input it gets."""
    rng = np.random.default_rng(14)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.4 * np.sin(xx / 7 + yy / 11)])
    img = 0.7 * base + 0.3 * rng.random((3, height, width), dtype=np.float32)
    for _ in range(40):  # thin diagonal streaks
        r, c = int(rng.integers(0, height)), int(rng.integers(0, width))
        length = int(rng.integers(8, 30))
        rows, cols = np.arange(r, r + length) % height, (c + np.arange(length) // 3) % width
        img[:, rows, cols] = np.maximum(img[:, rows, cols], 0.95)
    return np.clip(img, 0, 1)[None]


def used_precision(compiled: Any) -> str:
    """The precision a compiled model runs at (OpenVINO may ignore an unsupported hint)."""
    hint = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
    return next((p for key, p in FROM_HINT.items() if key in hint), hint)


def int8_layers(compiled: Any) -> int | None:
    """How many layers of ``compiled`` run in 8 bits (its runtime graph's precisions;
    None: it cannot say)."""
    def text(value: Any) -> str:  # rt_info values are OVAny
        return str(value.astype(str) if hasattr(value, "astype") else value).lower()

    try:
        ops = compiled.get_runtime_model().get_ordered_ops()
        return sum(text(op.get_rt_info()["runtimePrecision"]) in ("i8", "u8") for op in ops
                   if "runtimePrecision" in op.get_rt_info())
    except Exception:  # noqa: BLE001 - older OpenVINO, a different runtime graph
        return None


def _reason(exc: BaseException) -> str:
    """OpenVINO's message in one line: its first line names only the C++ source file, so
    the first line after it that says something is joined to it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def loaded_from_cache(compiled: Any) -> bool | None:
    """Whether OpenVINO imported ``compiled`` from its cache (None: it cannot say)."""
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))
    except Exception:  # noqa: BLE001 - older OpenVINO without the property
        return None


class OpenVINOBackend(Backend):
    name = "openvino"
    capabilities = Capabilities(precisions=(*PRECISIONS, "auto"))

    def __init__(self, model: ModelInfo, precision: str = "auto", threads: int = 0,
                 cache: Path | None = None, check: bool = True, pinning: bool | None = False,
                 streams: int = 1) -> None:
        if precision not in self.capabilities.precisions:
            allowed = ", ".join(self.capabilities.precisions)
            raise BackendError(f"openvino runs {allowed}, not {precision!r}")
        super().__init__(model, precision)
        self.requested = precision
        self.threads = threads
        self.streams = streams  # NUM_STREAMS; 0: OpenVINO's choice for the latency hint
        self.cache = cache
        self.check = check
        # OpenVINO pins its threads to cores by default (Linux). Off here, as ONNX Runtime's
        # spin-waiting is: the decoder, smoother and x264 threads share those cores, and the
        # scheduler must be free to move inference threads (engine alone on a shared 2-core
        # machine, 6 interleaved rounds: 2.10 fps unpinned vs 2.00 pinned). None: OpenVINO's default.
        self.pinning = pinning
        self.core = self.compiled = self.request = None
        self.precision_check: dict[str, Any] | None = None
        self.loaded_from_cache: bool | None = None
        self.choice_reason = ""

    def describe(self) -> str:
        psnr_db = (self.precision_check or {}).get("psnr_db")
        check = f", {psnr_db:.1f} dB vs fp32" if psnr_db is not None else ""
        return f"{self.name} ({self.precision}{check}, cpu, OpenVINO {openvino_version() or '?'})"

    def cache_folder(self, precision: str) -> Path:
        """Where compiled models of ``precision`` are cached (created if missing)."""
        folder = (self.cache or cache_dir() / "openvino") / precision
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # -- life cycle -------------------------------------------------------------------------

    def activate(self) -> None:
        ov = require("openvino", "openvino")
        self.core = ov.Core()
        self.irs: dict[str, Any] = {}
        only_int8 = self.requested == "int8" and "fp32" not in self.model.files
        self.ir = self._read("int8" if only_int8 else "fp32")
        self.input_dtype = np.float16 if "f16" in str(self.ir.inputs[0].element_type) else np.float32
        self.device_caps = set(self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        if self.requested == "auto":
            self._activate_auto()
        else:
            self._activate_explicit(self.requested)
        self.request = self.compiled.create_infer_request()
        self.loaded_from_cache = loaded_from_cache(self.compiled)
        log.debug("openvino: %s (%s)%s", self.precision, self.choice_reason,
                 "; compiled model loaded from the cache" if self.loaded_from_cache else "")

    def _read(self, precision: str) -> Any:
        """The model OpenVINO compiles for ``precision``: the INT8 file for int8, else the
        FP32 file (or the one file a user's model has), read once."""
        if precision != "int8":
            precision = "fp32"
        if precision not in self.irs:
            if precision == "int8":  # the IR of NNCF's OpenVINO path where there is one
                path = self.model.path(OPENVINO_INT8 if OPENVINO_INT8 in self.model.files else "int8")
            else:
                path = self.model.files.get("fp32") or self.model.path(next(iter(self.model.files)))
            try:
                self.irs[precision] = self.core.read_model(str(path))
            except Exception as exc:  # openvino raises its own untyped errors
                raise BackendError(f"openvino cannot read {path}: {str(exc).splitlines()[0]}") from None
        return self.irs[precision]

    def _activate_explicit(self, precision: str) -> None:
        cap = CAPABILITY.get(precision)
        if cap and cap not in self.device_caps:
            raise BackendError(f"openvino cannot run {precision} on this CPU ({cpu_info().model}); "
                               f"it supports {', '.join(sorted(self.device_caps))}")
        self.compiled = self._compile(precision)
        self.precision = self._ran(precision, self.compiled)
        self.choice_reason = f"asked for {precision}"
        if precision != "fp32":
            self.choice_reason += f"; {cpu_info().precision_reason(precision)}"
        if self.precision != "fp32" and self.check:
            result = self._check(self.compiled, precision)
            if not result["passed"]:
                log.warning("openvino %s output is %.1f dB PSNR from fp32 (below %.0f dB); running it anyway",
                            self.precision, result["psnr_db"], result["min_psnr_db"])

    def _int8_choice(self) -> tuple[bool, str]:
        """(whether ``auto`` may take int8 here, why (not))."""
        cpu = cpu_info()
        if not cpu.int8_dot:
            return False, cpu.precision_reason("int8")
        if "INT8" not in self.device_caps:
            return False, "OpenVINO's CPU plugin offers no INT8 here"
        ok, why = int8_passed(self.model, self.name)
        return ok, f"{cpu.precision_reason('int8')}, and the int8 file {why}" if ok else why

    def _activate_auto(self) -> None:
        cpu = cpu_info()
        int8_ok, int8_why = self._int8_choice()
        candidates = ["int8"] if int8_ok else []
        candidates += [p for p in cpu.native_precisions()
                       if p == "fp32" or CAPABILITY.get(p) in self.device_caps]
        for precision in candidates:
            try:
                compiled = self._compile(precision)
            except BackendError as exc:
                if precision != "int8":
                    raise
                log.warning("openvino: %s; trying the next precision", exc)
                int8_why = f"it did not compile ({exc})"
                continue
            if precision == "fp32" or not self.check or self._check(compiled, precision)["passed"]:
                self.compiled, self.precision = compiled, self._ran(precision, compiled)
                break
            log.warning("openvino: %s fails the precision check (%.1f dB < %.0f dB vs fp32); trying the next",
                        precision, self.precision_check["psnr_db"], self.precision_check["min_psnr_db"])
        reduced = [p for p in candidates if p != "fp32"]
        check = self.precision_check or {}
        if self.precision == "int8":
            self.choice_reason = f"auto: int8: {int8_why}"
            if check:
                self.choice_reason += f"; {check['psnr_db']:.1f} dB vs fp32 on the check frame"
        elif self.precision != "fp32":
            self.choice_reason = (f"auto: {cpu.precision_reason(self.precision)}, "
                                  f"{check['psnr_db']:.1f} dB vs fp32 (>= {MIN_PSNR_DB:.0f})")
        elif reduced:
            self.choice_reason = f"auto: fp32, since {', '.join(reduced)} failed the precision check"
        else:
            self.choice_reason = "auto: fp32, the CPU has no bf16/fp16 units"
        if self.precision != "int8":
            tried = "int8" in reduced and int8_why.startswith("8-bit")
            self.choice_reason += "; not int8: " + ("it failed the check frame" if tried else int8_why)

    def _ran(self, precision: str, compiled: Any) -> str:
        """The precision ``compiled`` runs at: int8 for the INT8 file when OpenVINO runs
        any of its layers in 8 bits (it may fall back to floating point), else the hint's."""
        if precision == "int8":
            layers = int8_layers(compiled)
            if layers is None or layers > 0:
                return "int8"
            log.warning("openvino ran no layer of the int8 file in 8 bits on this CPU")
        return used_precision(compiled)

    def _compile(self, precision: str) -> Any:
        config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": str(self.threads or cpu_info().cores or 0),
                  "CACHE_DIR": str(self.cache_folder(precision))}
        if self.streams:
            config["NUM_STREAMS"] = str(self.streams)
        if self.pinning is not None:
            config["ENABLE_CPU_PINNING"] = "YES" if self.pinning else "NO"
        from filelock import FileLock

        try:
            with FileLock(self.cache_folder(precision) / COMPILE_LOCK, timeout=COMPILE_LOCK_TIMEOUT_S):
                return self.core.compile_model(self._read(precision), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - openvino's errors are untyped
            raise BackendError(f"openvino cannot compile the model for {precision}: "
                               f"{_reason(exc)}") from None

    def _check(self, compiled: Any, precision: str | None = None) -> dict[str, Any]:
        """PSNR of ``compiled`` against an FP32 compile of the same model on :func:`check_frame`
        (repeated in every slot of a multi-frame model's window); int8 is held to
        :data:`MIN_PSNR_INT8_DB` (its quality gate is the manifest's), the rest to :data:`MIN_PSNR_DB`."""
        x = np.tile(check_frame(), (1, self.model.frames, 1, 1)).astype(self.input_dtype)
        ref = self._compile("fp32").create_infer_request().infer({0: x})[0].astype(np.float32)
        out = compiled.create_infer_request().infer({0: x})[0].astype(np.float32)
        value = float(psnr(np.clip(out, 0, 1), np.clip(ref, 0, 1), 1.0))
        used = self._ran(precision, compiled) if precision else used_precision(compiled)
        floor = MIN_PSNR_INT8_DB if used == "int8" else MIN_PSNR_DB
        self.precision_check = {"precision": used, "psnr_db": round(min(value, 999.0), 2),
                                "min_psnr_db": floor, "passed": value >= floor,
                                "frame": f"{CHECK_SIZE[1]}x{CHECK_SIZE[0]} synthetic"}
        return self.precision_check

    def deactivate(self) -> None:
        self.request = self.compiled = self.core = None
        super().deactivate()

    def run(self, x: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: x.astype(self.input_dtype, copy=False)}, share_inputs=True)[0]
        return out.astype(np.float32, copy=False)
