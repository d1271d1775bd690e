"""INT8 post-training quantization of an exported model, its check against FP32, and
its record in the manifest.

:func:`quantize_model` takes any exported model (single- or multi-frame: the input is
``ModelInfo.channels`` = 3K channels, K frames in slot order), calibrates NNCF's
post-training quantization on rainy and clean 640x360 windows (:func:`calibration_windows`),
writes ``<name>.int8.onnx`` beside the FP32 file (a QDQ ONNX model, what ONNX Runtime
runs in INT8) and ``<name>.int8.xml``/``.bin`` (the same quantization through NNCF's
OpenVINO path, what OpenVINO runs: faster than its reading of the QDQ file), checks
them against FP32 on the dev frames (:func:`check_int8`) on every installed CPU backend,
and records the files, the settings and the verdict of :data:`GATE` in the manifest
(``files.int8``, ``files.int8_openvino`` and ``int8``).

Calibration data (:data:`CALIBRATION_SOURCES`, under ``../shared/data``): clean video
(DAVIS ``davis_extra``, Cityscapes ``seq0000``-``seq0003``) with and without the
synthesiser's temporally coherent rain, the first 60% of the real rainy clips ``ra1``
and ``rb2``, and CamVid stills of the drives that no dev set uses. Never a dev set's
frames (:data:`~stream_derain.devsets` pairs, CamVid ``0006R0``, ``clean_video/davis``;
:data:`~stream_derain.devvideo.DEV_CLIPS`: CamVid ``0016E5``, Cityscapes ``seq0004``/``5``,
Udacity; the last 40% of the real clips).

The check (:data:`GATE`) runs the dev stills (each in every slot of a K-frame window)
and the dev video clips (K consecutive frames, centred windows) through FP32 (ONNX
Runtime, the exported reference) and through the INT8 file on each backend:

- agreement: PSNR-Y of the INT8 output against the FP32 output, the mean over each set,
  at least ``min_agreement_db`` for every set;
- fidelity: each set's mean PSNR-Y against its ground truth within ``max_delta_db`` of FP32's;
- do no harm: on the rain-free sets, the brightness bias within ``max_bias_delta``
  grey levels and the detail ratio within ``max_detail_delta`` of FP32's, and PSNR-Y as
  above unless both stay at or above ``harmless_db`` (60 dB against the input: an RMS
  change below a quarter of a grey level, where FP32 itself sits at 49-75 dB and a
  0.1 dB rule would ask INT8 to be bit-exact).

With ``QuantizeSettings(accuracy_db=...)`` (``--accuracy-db``), NNCF's accuracy control
first finds the layers that must stay in floating point for the worst quarter of
held-out calibration windows to agree with FP32 at that PSNR-Y (:mod:`.accuracy`).

The manifest's record names the FP32 file's hash it was made from: a re-exported model
(a new ``derain-student.onnx``) leaves a stale record that :func:`stream_derain.catalog.int8_record` ignores.
"""

from ..calibration import (
    CALIB_COUNT,
    CALIB_SIZE,
    CALIBRATION_SOURCES,
    EXCLUDED,
    SEED,
    CalibSource,
    Window,
    aligned,
    calibration_files,
    calibration_windows,
    window_at,
)
from .gate import DEV_VIDEO_ROOT, DEV_VIDEO_STEP, GATE, DevSet, check_int8, still_sets, verdict, video_sets
from .nncf_run import QuantizeSettings, nncf_version, output_tail, quantize_onnx, quantize_openvino
from .run import QuantizeResult, quantize_model

__all__ = [
    "CALIBRATION_SOURCES",
    "CALIB_COUNT",
    "CALIB_SIZE",
    "CalibSource",
    "DEV_VIDEO_ROOT",
    "DEV_VIDEO_STEP",
    "DevSet",
    "EXCLUDED",
    "GATE",
    "QuantizeResult",
    "QuantizeSettings",
    "SEED",
    "Window",
    "aligned",
    "calibration_files",
    "calibration_windows",
    "check_int8",
    "nncf_version",
    "output_tail",
    "quantize_model",
    "quantize_onnx",
    "quantize_openvino",
    "still_sets",
    "verdict",
    "video_sets",
    "window_at",
]
