"""``build-engine --check``: do the engines compute what the ONNX models compute?

With a GPU: the FP16 and FP32 engines run the same rainy frames, compared with each
other and with ONNX Runtime on the FP32 ONNX (PSNR in dB). Without one the engines
cannot run; the FP16 ONNX is compared with the FP32 ONNX under ONNX Runtime instead,
and the report says plainly that no engine was executed.

It runs the TensorRT backend, so it sits beside the backends: ``trt/`` (engine building,
probing, the cache) is below them and imports none of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..catalog import ModelInfo
from ..errors import ModelError, require
from ..trt import probe

log = logging.getLogger(__name__)
FLOOR_DB = {"fp32": 40.0, "fp16": 35.0}  # below this the check fails


@dataclass
class CheckReport:
    engine_executed: bool
    psnr_db: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        out = [f"{k}: {v:.1f} dB" for k, v in self.psnr_db.items()]
        return out + self.notes + [f"FAILED: {f}" for f in self.failures]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def check_frames(height: int, width: int, multiple: int, n: int = 2, seed: int = 0) -> np.ndarray:
    """Nx3xHxW float32 rainy frames (smooth background + synthetic rain), aligned."""
    import cv2

    from ..synth import add_rain

    rng = np.random.default_rng(seed)
    h, w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    frames = []
    for _ in range(n):
        small = rng.random((max(2, h // 32), max(2, w // 32), 3), dtype=np.float32)
        clean = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        frames.append(add_rain(clean, rng).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(frames), dtype=np.float32)


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime on the CPU; feeds float16 to an FP16 ONNX."""
    ort = require("onnxruntime", "onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32
    return sess.run(None, {inp.name: x.astype(dtype)})[0].astype(np.float32)


def _compare(report: CheckReport, name: str, a: np.ndarray, b: np.ndarray, floor: float) -> None:
    report.psnr_db[name] = p = psnr(a, b)
    if p < floor:
        report.failures.append(f"{name} {p:.1f} dB < {floor:.0f} dB")


def check_onnx_only(model: ModelInfo, x: np.ndarray) -> CheckReport:
    """No GPU: FP16 ONNX vs FP32 ONNX under ONNX Runtime."""
    report = CheckReport(engine_executed=False)
    ref = ort_run(model.path("fp32"), x)
    if "fp16" in model.files:
        _compare(report, "onnx fp16 vs onnx fp32 (onnxruntime)", ort_run(model.path("fp16"), x), ref,
                 FLOOR_DB["fp16"])
    report.notes.append("no GPU here: the TensorRT engine itself was NOT executed; only the ONNX "
                        "files it was built from were compared with ONNX Runtime")
    return report


def check_engines(model: ModelInfo, x: np.ndarray, max_batch: int, compute_capability: str | None,
                  cache_dir: Path | None) -> CheckReport:
    """GPU: FP16 engine vs FP32 engine vs ONNX Runtime (FP32 ONNX, CPU)."""
    from .tensorrt import TensorRTBackend

    report = CheckReport(engine_executed=True)
    ref = ort_run(model.path("fp32"), x)
    outs = {}
    for prec in ("fp32", "fp16"):
        if prec == "fp16" and "fp16" not in model.files and not probe.load().fp16_flag:
            report.notes.append("no FP16 ONNX for this model: FP16 engine skipped")
            continue
        backend = TensorRTBackend(model, prec, x.shape[2], x.shape[3], max_batch, compute_capability,
                                  cache_dir)
        with backend:
            outs[prec] = backend.run(x)
        _compare(report, f"engine {prec} vs onnxruntime fp32", outs[prec], ref, FLOOR_DB[prec])
    if len(outs) == 2:
        _compare(report, "engine fp16 vs engine fp32", outs["fp16"], outs["fp32"], FLOOR_DB["fp16"])
    return report


def check(model: ModelInfo, height: int, width: int, max_batch: int = 2,
          compute_capability: str | None = None, cache_dir: Path | None = None) -> CheckReport:
    """Run the engine check where a GPU can, else the ONNX-only check."""
    if "fp32" not in model.files:
        raise ModelError(f"--check compares against the FP32 ONNX; {model.name} has none")
    x = check_frames(height, width, model.multiple, n=min(2, max_batch))
    x = np.tile(x, (1, model.frames, 1, 1))  # a multi-frame model: the frame in every slot
    ok, why = probe.engine_support()
    if not ok:
        log.info("engine check not possible: %s", why)
        return check_onnx_only(model, x)
    return check_engines(model, x, max_batch, compute_capability, cache_dir)
