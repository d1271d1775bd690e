"""Accuracy control: which layers must stay in floating point for INT8 to agree with FP32.

Post-training quantization of the whole network (the output tail aside) leaves v3 at
35-38 dB from FP32 on heavy rain, and no single layer is to blame (docs/int8.md). NNCF's
``quantize_with_accuracy_control`` quantizes the OpenVINO model, ranks the quantized
layers by what reverting each one to floating point gains on a validation set, and
reverts them one group at a time until the metric is within ``max_drop`` of FP32's.

Here the validation set is the last quarter of the calibration windows (held out from
calibration; never dev frames) and the metric is the INT8 output's PSNR-Y against the
FP32 output over the *worst quarter* of those windows (each capped at :data:`CAP`, what
FP32 scores against itself): the gate asks 45 dB of every dev set, heavy rain included,
so an average over mostly light windows would stop too early. The OpenVINO IR written
is NNCF's controlled model itself (the one validated). The layers it reverted are found
by comparing it with plain quantization (:func:`_quantized_ops`) and returned as ONNX
node names: they join the record's ``ignored`` list and the ONNX file's quantization.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import to_nhwc_uint8
from ..calibration import Window
from .nncf_run import QuantizeSettings, nncf_kwargs, openvino_names

log = logging.getLogger(__name__)

CAP = 60.0  # dB: an output within a quarter of a grey level RMS of FP32's counts as equal
VALIDATION_SHARE = 4  # one window in four validates, the rest calibrate


def split_windows(windows: Sequence[Window]) -> tuple[list[Window], list[Window]]:
    """(calibration, validation): the last quarter of ``windows`` validates."""
    n = max(1, len(windows) // VALIDATION_SHARE)
    return list(windows[:-n]), list(windows[-n:])


def _uint8(y: np.ndarray) -> np.ndarray:
    """1x3xHxW model output -> HxWx3 uint8, rounded as the backends round it."""
    return to_nhwc_uint8(y, *y.shape[2:])[0]


def worst_quarter_metric(references: Sequence[np.ndarray]) -> Any:
    """A validation function for NNCF: a compiled model and the validation windows ->
    (mean PSNR-Y against ``references`` over the worst quarter, every window's score)."""
    from ..metrics import psnr, rgb_to_y

    def validate(compiled: Any, windows: Sequence[Window]) -> tuple[float, list[float]]:
        scores = [min(CAP, psnr(rgb_to_y(_uint8(compiled(w.nchw())[0])), ref))
                  for w, ref in zip(windows, references)]
        worst = sorted(scores)[: max(1, len(scores) // 4)]
        return float(np.mean(worst)), scores

    return validate


LAYOUT_OPS = {"Reshape", "Unsqueeze", "Squeeze", "Transpose", "DepthToSpace", "SpaceToDepth", "Concat",
              "Split", "VariadicSplit", "Slice", "StridedSlice"}
WEIGHT_PATH = {"Convert", "Subtract", "Multiply", "Reshape"}  # int8 weights -> float, as NNCF stores them


def _eight_bit_source(node: Any) -> bool:
    """``node`` is an 8-bit constant, or turns one to float (how NNCF stores quantized weights)."""
    while node.get_type_name() in WEIGHT_PATH and node.inputs():
        node = node.input(0).get_source_output().get_node()
    return (node.get_type_name() == "Constant"
            and node.get_output_element_type(0).get_type_name() in ("i8", "u8"))


def _quantized_ops(model: Any) -> set[str]:
    """Friendly names of the operations NNCF quantized: those with 8-bit weights and those
    that read a FakeQuantize (an activation quantizer). Not the weights' own dequantization
    steps, nor layout-only operations (a quantizer moved up through a reshape belongs to
    the convolution after it)."""
    names = set()
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind in LAYOUT_OPS or kind in ("Constant", "Convert"):
            continue
        if kind in WEIGHT_PATH and _eight_bit_source(op):  # a weight's own dequantization
            continue
        sources = [i.get_source_output().get_node() for i in op.inputs()]
        if any(n.get_type_name() == "FakeQuantize" or _eight_bit_source(n) for n in sources):
            names.add(op.get_friendly_name())
    return names


def onnx_name(ov_name: str) -> str:
    """OpenVINO names a convolution with a bias ``<onnx name>/WithoutBiases``."""
    return ov_name.removesuffix("/WithoutBiases")


def accuracy_kept(fp32_path: Path, windows: Sequence[Window], ignored: Sequence[str],
                  settings: QuantizeSettings) -> tuple[list[str], Any]:
    """(ONNX node names that NNCF's accuracy control keeps in floating point beyond
    ``ignored``, NNCF's controlled OpenVINO model): the worst quarter of the validation
    windows agrees with FP32 at ``settings.accuracy_db`` (PSNR-Y). The model is the one
    validated; quantizing again with the names kept gives another (ranges and bias
    correction computed without the reverted quantizers upstream)."""
    from ..errors import require
    from ..metrics import rgb_to_y

    nncf = require("nncf", "openvino")
    ov = require("openvino", "openvino")
    calib, val = split_windows(windows)
    core = ov.Core()
    model = core.read_model(str(fp32_path))
    reference = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    refs = [rgb_to_y(_uint8(reference(w.nchw())[0])) for w in val]
    scope = nncf.IgnoredScope(names=openvino_names(model, ignored), validate=False)
    log.info("accuracy control: %d calibration and %d validation windows, worst quarter >= %.1f dB vs fp32",
             len(calib), len(val), settings.accuracy_db)
    plain = nncf.quantize(model, nncf.Dataset(calib, lambda w: w.nchw()), ignored_scope=scope,
                          **nncf_kwargs(nncf, settings, len(calib)))
    controlled = nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(calib, lambda w: w.nchw()), nncf.Dataset(val, lambda w: w.nchw()),
        validation_fn=worst_quarter_metric(refs), max_drop=CAP - settings.accuracy_db,
        drop_type=nncf.DropType.ABSOLUTE, ignored_scope=scope,
        **nncf_kwargs(nncf, settings, len(calib), controlled=True))
    reverted = sorted({onnx_name(n) for n in _quantized_ops(plain) - _quantized_ops(controlled)})
    log.info("accuracy control kept %d more node(s) in floating point: %s", len(reverted),
             ", ".join(reverted) or "none")
    return reverted, controlled
