"""The NNCF calls: post-training quantization of an FP32 ONNX model into a QDQ ONNX file
(what ONNX Runtime runs) and an OpenVINO IR (what OpenVINO runs), with the output tail
kept in floating point (:func:`output_tail`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..calibration import CALIB_COUNT, CALIB_SIZE, SEED, Window
from ..errors import ConfigError

log = logging.getLogger(__name__)

CONV_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def output_tail(proto: Any) -> list[str]:
    """The nodes that make the output from the last convolutions: every node from which a
    graph output is reached without passing another convolution, the output convolutions
    (v3: the rain and detail heads) included, e.g. ``clamp(I - R + D)`` after them.
    Quantizing there puts 8-bit steps into the output itself (measured on v3: 32 dB
    against FP32 with the heads alone kept in floating point, as NNCF still quantized the
    rain layer R and I - R at the residual's inputs); they stay in floating point."""
    consumers: dict[str, list[Any]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in proto.graph.output}
    memo: dict[str, bool] = {}

    def reaches(node: Any, seen: frozenset[str] = frozenset()) -> bool:
        """A graph output is reached from ``node``'s outputs without passing a convolution."""
        if node.name in memo:
            return memo[node.name]
        hit = any(t in outputs for t in node.output) or any(
            nxt.op_type not in CONV_OPS and nxt.name not in seen and reaches(nxt, seen | {node.name})
            for t in node.output for nxt in consumers.get(t, []))
        memo[node.name] = hit
        return hit

    return [n.name for n in proto.graph.node if n.op_type != "Constant" and reaches(n)]


@dataclass(frozen=True)
class QuantizeSettings:
    """How NNCF quantizes: ``ignored`` are node names kept in floating point (None: the
    output convolutions and what follows them, :func:`output_tail`); ``preset`` ``mixed`` (symmetric weights,
    asymmetric activations: ReLU-free inputs such as frame differences) or ``performance``."""

    windows: int = CALIB_COUNT
    size: tuple[int, int] = CALIB_SIZE
    seed: int = SEED
    ignored: tuple[str, ...] | None = None
    preset: str = "mixed"
    # fast (NNCF's default): without it INT8 shifts the mean brightness of rain-free frames (a
    # do-no-harm figure); none gave v3 about 1 dB more agreement on light rain, not on heavy
    bias_correction: str = "fast"
    # accuracy control (:mod:`.accuracy`): more layers kept in floating point until the worst
    # quarter of held-out calibration windows agrees with FP32 at this PSNR-Y; None: off
    accuracy_db: float | None = None

    def __post_init__(self) -> None:
        if self.accuracy_db is not None and not 20.0 <= self.accuracy_db <= 60.0:
            raise ConfigError(f"--accuracy-db must be within 20-60 dB (PSNR-Y), got {self.accuracy_db}")

    def as_dict(self, ignored: Sequence[str]) -> dict[str, Any]:
        return {"windows": self.windows, "size": f"{self.size[1]}x{self.size[0]}", "seed": self.seed,
                "ignored": list(ignored), "preset": self.preset, "bias_correction": self.bias_correction,
                "accuracy_db": self.accuracy_db}


def nncf_version() -> str | None:
    import importlib.metadata as md

    try:
        return md.version("nncf")
    except md.PackageNotFoundError:
        return None


def nncf_kwargs(nncf: Any, settings: QuantizeSettings, windows: int,
                controlled: bool = False) -> dict[str, Any]:
    """The keyword arguments of ``nncf.quantize`` for ``settings`` (``controlled``: of
    ``nncf.quantize_with_accuracy_control``, which names the advanced parameters apart)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
    if settings.preset not in presets:
        raise ConfigError(f"unknown preset {settings.preset!r}; choose from {', '.join(presets)}")
    if settings.bias_correction not in ("none", "fast", "full"):
        raise ConfigError(f"bias correction {settings.bias_correction!r}: choose none, fast or full")
    advanced = "advanced_quantization_parameters" if controlled else "advanced_parameters"
    return {"preset": presets[settings.preset], "subset_size": windows,
            "fast_bias_correction": settings.bias_correction != "full",
            advanced: AdvancedQuantizationParameters(
                disable_bias_correction=settings.bias_correction == "none")}


def openvino_names(model: Any, onnx_names: Sequence[str]) -> list[str]:
    """The OpenVINO operations made from the ONNX nodes ``onnx_names``: OpenVINO names a
    convolution with a bias "<onnx name>/WithoutBiases" and its bias "<onnx name>"."""
    names = {op.get_friendly_name() for op in model.get_ops()}
    return sorted(op for op in names if any(op == n or op.startswith(n + "/") for n in onnx_names))


def quantize_onnx(fp32_path: Path, windows: Sequence[Window], out_path: Path,
                  settings: QuantizeSettings = QuantizeSettings(), input_name: str = "input") -> list[str]:
    """NNCF post-training quantization of the ONNX file ``fp32_path`` on ``windows``, written
    to ``out_path`` as a QDQ ONNX model (what ONNX Runtime runs); returns the node names
    kept in floating point."""
    from ..errors import require

    nncf = require("nncf", "openvino")
    import onnx

    proto = onnx.load(str(fp32_path))
    ignored = list(settings.ignored) if settings.ignored is not None else output_tail(proto)
    known = {n.name for n in proto.graph.node}
    missing = [n for n in ignored if n not in known]
    if missing:
        raise ConfigError(f"no node named {missing[0]!r} in {fp32_path.name} (--ignore)")
    kwargs = nncf_kwargs(nncf, settings, len(windows))
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=ignored)
    log.info("quantizing %s to ONNX with NNCF %s on %d windows (kept in floating point: %s)", fp32_path.name,
             nncf_version(), len(windows), ", ".join(ignored) or "nothing")
    dataset = nncf.Dataset(list(windows), lambda w: {input_name: w.nchw()})
    quantized = nncf.quantize(proto, dataset, **kwargs)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    onnx.save(quantized, str(tmp))
    tmp.replace(out_path)
    return ignored


def quantize_openvino(fp32_path: Path, windows: Sequence[Window], out_xml: Path, ignored: Sequence[str],
                      settings: QuantizeSettings = QuantizeSettings(), quantized: Any = None) -> Path:
    """The same quantization through NNCF's OpenVINO path, written as OpenVINO IR
    (``out_xml`` and the ``.bin`` beside it): OpenVINO runs it faster than the QDQ ONNX file
    (v3 at 640x360 on AMX: 19 ms against 27 ms a frame, best of 20) and compiles it with a
    bf16 hint, which it refuses for the QDQ file. ``ignored``: ONNX node names, kept in
    floating point with the IR nodes made from them. ``quantized``: an OpenVINO model NNCF
    already made (accuracy control's), written as it is. Returns the ``.bin`` path."""
    from ..errors import require

    ov = require("openvino", "openvino")
    if quantized is None:
        nncf = require("nncf", "openvino")
        model = ov.Core().read_model(str(fp32_path))
        kwargs = nncf_kwargs(nncf, settings, len(windows))
        kept = openvino_names(model, ignored)
        if kept:
            kwargs["ignored_scope"] = nncf.IgnoredScope(names=kept, validate=False)
        log.info("quantizing %s to OpenVINO IR with NNCF %s", fp32_path.name, nncf_version())
        quantized = nncf.quantize(model, nncf.Dataset(list(windows), lambda w: w.nchw()), **kwargs)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return out_xml.with_suffix(".bin")
