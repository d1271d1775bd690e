"""ONNX Runtime backend: the embedded default (CPU; CUDA provider when installed)."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import BackendError, require
from ..models import ModelInfo
from .base import Backend, Capabilities

log = logging.getLogger(__name__)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    capabilities = Capabilities(precisions=("fp32", "fp16"))

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

    @property
    def device(self) -> str:
        if self.session is not None and "CUDAExecutionProvider" in self.session.get_providers():
            return "cuda"
        return "cpu"

    @staticmethod
    def available_providers() -> list[str]:
        ort = require("onnxruntime", "onnxruntime")
        return list(ort.get_available_providers())

    def activate(self) -> None:
        ort = require("onnxruntime", "onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        providers = self.providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                                       if p in ort.get_available_providers()]
        path = self.model.path(self.precision)
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BackendError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        log.debug("onnxruntime session on %s", self.session.get_providers())

    def deactivate(self) -> None:
        self.session = None
        super().deactivate()

    def run(self, x: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {self.input_name: x.astype(self.input_dtype, copy=False)})
        return out.astype(np.float32, copy=False)
