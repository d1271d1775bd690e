"""ONNX Runtime backend: the embedded default (CPU; CUDA provider when installed).

``precision``: ``fp32``, ``fp16`` (the FP16 file), ``int8`` (the INT8 file made by
``stream-derain quantize``: ONNX Runtime fuses its QDQ pairs into 8-bit convolutions on
the CPU) or ``auto``: int8 on the CPU where it has 8-bit dot products
(:meth:`stream_derain.devices.CpuInfo.int8_units`) and the manifest says the INT8 file
passed its quality gate on ONNX Runtime (:func:`stream_derain.catalog.int8_passed`),
else fp32. int8 is checked against the FP32 file on a check frame at activation
(:attr:`OnnxRuntimeBackend.precision_check`; a sanity floor: the quality gate is the manifest's).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..catalog import ModelInfo, int8_passed
from ..devices import cpu_info
from ..errors import BackendError, require
from ..metrics import psnr
from .base import Backend, Capabilities

log = logging.getLogger(__name__)
MIN_PSNR_DB = {"fp16": 50.0, "int8": 30.0}  # the check frame against fp32 (int8's gate: the manifest's)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    capabilities = Capabilities(precisions=("fp32", "fp16", "int8", "auto"))

    def __init__(self, model: ModelInfo, precision: str = "fp32", threads: int = 0,
                 providers: list[str] | None = None, spinning: bool = False) -> None:
        super().__init__(model, precision)
        self.threads = threads
        self.providers = providers
        # ORT's intra-op threads spin-wait between (and after) runs by default. In the
        # pipeline that burns the cores the decoder, smoother and x264 threads need: on
        # 2 cores, turning it off took the 360p sample from 17 to 21 fps (115 to 89 ms
        # of CPU per frame) with the engine alone unchanged (33-37 fps).
        self.spinning = spinning
        self.session = None
        self.requested = precision
        self.precision_check: dict[str, Any] | None = None
        self.choice_reason = ""

    @property
    def device(self) -> str:
        if self.session is not None and "CUDAExecutionProvider" in self.session.get_providers():
            return "cuda"
        return "cpu"

    @staticmethod
    def available_providers() -> list[str]:
        ort = require("onnxruntime", "onnxruntime")
        return list(ort.get_available_providers())

    def describe(self) -> str:
        psnr_db = (self.precision_check or {}).get("psnr_db")
        check = f", {psnr_db:.1f} dB vs fp32" if psnr_db is not None else ""
        return f"{self.name} ({self.precision}{check}, {self.device})"

    def _auto(self, providers: list[str]) -> tuple[str, str]:
        """(precision, reason) for ``auto``."""
        if "fp32" not in self.model.files:  # a user's single fp16 (or int8) file
            only = next(iter(self.model.files))
            return only, f"auto: {only}, the model's one file"
        if "CUDAExecutionProvider" in providers:
            return "fp32", "auto: fp32 on the CUDA provider"
        cpu = cpu_info()
        if not cpu.int8_dot:
            return "fp32", f"auto: fp32; not int8: {cpu.precision_reason('int8')}"
        ok, why = int8_passed(self.model, self.name)
        if not ok:
            return "fp32", f"auto: fp32; not int8: {why}"
        return "int8", f"auto: int8: {cpu.precision_reason('int8')}, and the int8 file {why}"

    def _session(self, ort: Any, opts: Any, providers: list[str], precision: str) -> Any:
        path = self.model.path(precision)
        try:
            return ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BackendError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None

    def _check(self, ort: Any, opts: Any, providers: list[str]) -> dict[str, Any] | None:
        """The running session's output against the FP32 file's on the check frame."""
        if self.precision == "fp32" or "fp32" not in self.model.files:
            return None
        from .openvino import CHECK_SIZE, check_frame  # numpy only: no openvino import

        ref = self._session(ort, opts, providers, "fp32")
        x = np.tile(check_frame(), (1, self.model.frames, 1, 1))
        want = ref.run(None, {ref.get_inputs()[0].name: x})[0].astype(np.float32)
        got = self.run(x)
        value = float(psnr(np.clip(got, 0, 1), np.clip(want, 0, 1), 1.0))
        floor = MIN_PSNR_DB.get(self.precision, 50.0)
        self.precision_check = {"precision": self.precision, "psnr_db": round(min(value, 999.0), 2),
                                "min_psnr_db": floor, "passed": value >= floor,
                                "frame": f"{CHECK_SIZE[1]}x{CHECK_SIZE[0]} synthetic"}
        if value < floor:
            log.warning("onnxruntime %s output is %.1f dB PSNR from fp32 (below %.0f dB) on the check frame",
                        self.precision, value, floor)
        return self.precision_check

    def activate(self) -> None:
        ort = require("onnxruntime", "onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        providers = self.providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                                       if p in ort.get_available_providers()]
        if self.requested == "auto":
            self.precision, self.choice_reason = self._auto(providers)
        else:
            self.choice_reason = f"asked for {self.precision}"
            if self.precision == "int8":
                self.choice_reason += f"; {cpu_info().precision_reason('int8')}"
        self.session = self._session(ort, opts, providers, self.precision)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        if self.precision == "int8":  # fp16 is the export's, checked there; int8 is checked here too
            self._check(ort, opts, providers)
        log.debug("onnxruntime: %s (%s) on %s", self.precision, self.choice_reason,
                 ", ".join(self.session.get_providers()))

    def deactivate(self) -> None:
        self.session = None
        super().deactivate()

    def run(self, x: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {self.input_name: x.astype(self.input_dtype, copy=False)})
        return out.astype(np.float32, copy=False)
