"""ONNX export of the student, checked against torch with ONNX Runtime right after.

Two files per model: FP32 (float32 I/O) and FP16 (float16 weights, activations and
I/O: the TensorRT path feeds it half-precision buffers). Both take
``input`` Nx3xHxW in [0, 1] (Nx3KxHxW for a K-frame student: its window, slot 0 the
target) with dynamic N, H, W (multiples of the student's scale) and return ``output``
Nx3xHxW. The manifest entry records hashes, MACs per pixel, parameters, the network's
hyperparameters, a multi-frame student's window, and how it was trained (``training``:
the checkpoint's steps, wall time and full training config).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalog import sha256, write_entry
from ..errors import ModelError
from .grown_teacher import Derainer, GrownTeacher, teacher_config_dict
from .student import count_macs_per_pixel, count_parameters, student_config_dict
from .temporal import OFFSETS, TemporalStudent, temporal_config_dict

log = logging.getLogger(__name__)
OPSET = 17


def in_channels(model: torch.nn.Module) -> int:
    """3 for a single-frame model, 3K for a K-frame one (:mod:`.temporal`)."""
    return int(getattr(model, "in_channels", 3))


def architecture(model: Derainer) -> dict[str, Any]:
    """The manifest's description of the network: its hyperparameters and, for a K-frame
    student, its window (``frames``, ``offsets`` of each mode) and ``temporal`` config."""
    if isinstance(model, TemporalStudent):
        return {"student": student_config_dict(model), "temporal": temporal_config_dict(model),
                "frames": model.tcfg.frames, "kernel": model.tcfg.kernel,
                "offsets": {k: list(v) for k, v in OFFSETS[model.tcfg.frames].items()}}
    if isinstance(model, GrownTeacher):
        return {"teacher": teacher_config_dict(model)}
    return {"student": student_config_dict(model)}


def export_onnx(model: Derainer, path: Path) -> None:
    model = model.eval().float().cpu()
    s = model.multiple
    dummy = torch.rand(1, in_channels(model), 16 * s, 24 * s)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, dummy, str(path), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": axes, "output": axes}, opset_version=OPSET,
                          dynamo=False)


def to_fp16(src: Path, dst: Path) -> None:
    """FP16 weights and activations with float16 I/O (onnxruntime's converter)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=False)
    onnx.save(m, str(dst))


def check_against_torch(model: Derainer, path: Path, fp16: bool = False, seed: int = 0) -> float:
    """PSNR (dB) of ONNX Runtime's output against torch's on a random odd-batch input.
    Raises ModelError when it is below 60 dB (FP32) or 40 dB (FP16)."""
    import onnxruntime as ort

    g = torch.Generator().manual_seed(seed)
    s = model.multiple
    x = torch.rand(2, in_channels(model), 18 * s, 31 * s, generator=g)
    with torch.no_grad():
        ref = model.eval().float()(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = x.numpy().astype(np.float16 if fp16 else np.float32)
    out = sess.run(None, {"input": inp})[0].astype(np.float32)
    mse = float(np.mean((out - ref) ** 2))
    psnr = 10 * np.log10(1.0 / max(mse, 1e-12))
    floor = 40.0 if fp16 else 60.0
    if psnr < floor:
        raise ModelError(f"{path.name} disagrees with torch: PSNR {psnr:.1f} dB < {floor} dB")
    return psnr


def export_model(model: Derainer, out_dir: Path, name: str, version: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``name.onnx`` and ``name.fp16.onnx``, check both, update the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32, fp16 = out_dir / f"{name}.onnx", out_dir / f"{name}.fp16.onnx"
    export_onnx(model, fp32)
    psnr32 = check_against_torch(model, fp32)
    to_fp16(fp32, fp16)
    psnr16 = check_against_torch(model, fp16, fp16=True)
    log.info("exported %s: ORT vs torch %.1f dB (fp32), %.1f dB (fp16)", name, psnr32, psnr16)
    entry = {
        "version": version, "arch": type(model).__name__, "multiple": model.multiple,
        **architecture(model), "input": "input", "output": "output",
        "normalisation": (f"RGB float in [0, 1], Nx{in_channels(model)}xHxW in (output Nx3xHxW); "
                          "fp16 file takes and returns float16"),
        "macs_per_pixel": round(count_macs_per_pixel(model), 1), "parameters": count_parameters(model),
        "files": {"fp32": {"file": fp32.name, "sha256": sha256(fp32)},
                  "fp16": {"file": fp16.name, "sha256": sha256(fp16)}},
        "export_check_psnr_db": {"fp32": round(psnr32, 1), "fp16": round(psnr16, 1)},
        **(extra or {}),
    }
    write_entry(out_dir, name, entry, merge=True, default="make")
    return entry
