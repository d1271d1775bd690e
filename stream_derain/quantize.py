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

The manifest's record names the FP32 file's hash it was made from: a re-exported model
(a new ``derain-student.onnx``) leaves a stale record that :func:`stream_derain.models.int8_record` ignores.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import (  # noqa: F401 - re-exported: the calibration data's names
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
from .devices import has_module
from .devsets import DATA_ROOT
from .errors import ConfigError
from .models import MANIFEST, OPENVINO_INT8, ModelInfo, int8_file_name, sha256

log = logging.getLogger(__name__)

GATE = {"min_agreement_db": 45.0, "max_delta_db": 0.1, "max_bias_delta": 0.05, "max_detail_delta": 0.005,
        "harmless_db": 60.0}
DEV_VIDEO_ROOT = Path("runs/devvideo")
DEV_VIDEO_STEP = 2  # every 2nd frame of each dev clip is a target (its window reads the others)


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

    def as_dict(self, ignored: Sequence[str]) -> dict[str, Any]:
        return {"windows": self.windows, "size": f"{self.size[1]}x{self.size[0]}", "seed": self.seed,
                "ignored": list(ignored), "preset": self.preset, "bias_correction": self.bias_correction}


def nncf_version() -> str | None:
    import importlib.metadata as md

    try:
        return md.version("nncf")
    except md.PackageNotFoundError:
        return None


def _nncf_kwargs(nncf: Any, settings: QuantizeSettings, windows: int) -> dict[str, Any]:
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
    if settings.preset not in presets:
        raise ConfigError(f"unknown preset {settings.preset!r}; choose from {', '.join(presets)}")
    if settings.bias_correction not in ("none", "fast", "full"):
        raise ConfigError(f"bias correction {settings.bias_correction!r}: choose none, fast or full")
    return {"preset": presets[settings.preset], "subset_size": windows,
            "fast_bias_correction": settings.bias_correction != "full",
            "advanced_parameters": AdvancedQuantizationParameters(
                disable_bias_correction=settings.bias_correction == "none")}


def quantize_onnx(fp32_path: Path, windows: Sequence[Window], out_path: Path,
                  settings: QuantizeSettings = QuantizeSettings(), input_name: str = "input") -> list[str]:
    """NNCF post-training quantization of the ONNX file ``fp32_path`` on ``windows``, written
    to ``out_path`` as a QDQ ONNX model (what ONNX Runtime runs); returns the node names
    kept in floating point."""
    from .errors import require

    nncf = require("nncf", "openvino")
    import onnx

    proto = onnx.load(str(fp32_path))
    ignored = list(settings.ignored) if settings.ignored is not None else output_tail(proto)
    known = {n.name for n in proto.graph.node}
    missing = [n for n in ignored if n not in known]
    if missing:
        raise ConfigError(f"no node named {missing[0]!r} in {fp32_path.name} (--ignore)")
    kwargs = _nncf_kwargs(nncf, settings, len(windows))
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
                      settings: QuantizeSettings = QuantizeSettings()) -> Path:
    """The same quantization through NNCF's OpenVINO path, written as OpenVINO IR
    (``out_xml`` and the ``.bin`` beside it): OpenVINO runs it faster than the QDQ ONNX file
    (v3 at 640x360 on AMX: 19 ms against 27 ms a frame, best of 20) and compiles it with a
    bf16 hint, which it refuses for the QDQ file. ``ignored``: ONNX node names, kept in
    floating point with the IR nodes made from them. Returns the ``.bin`` path."""
    from .errors import require

    nncf = require("nncf", "openvino")
    ov = require("openvino", "openvino")
    model = ov.Core().read_model(str(fp32_path))
    names = {op.get_friendly_name() for op in model.get_ops()}
    kwargs = _nncf_kwargs(nncf, settings, len(windows))
    # OpenVINO names a convolution with a bias "<onnx name>/WithoutBiases" and its bias "<onnx name>"
    kept = sorted(op for op in names if any(op == n or op.startswith(n + "/") for n in ignored))
    if kept:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=kept, validate=False)
    log.info("quantizing %s to OpenVINO IR with NNCF %s", fp32_path.name, nncf_version())
    quantized = nncf.quantize(model, nncf.Dataset(list(windows), lambda w: w.nchw()), **kwargs)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return out_xml.with_suffix(".bin")


# --- the check against FP32 ------------------------------------------------------------------

@dataclass
class DevSet:
    """Dev frames: (window, ground truth) pairs; ``rain_free``: the ground truth is the
    input (do no harm). ``load`` reads them when the set is checked (memory: one set at a time)."""

    name: str
    load: Callable[[], list[tuple[Window, np.ndarray]]]
    rain_free: bool = False


def _paired(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from .evaluate import PairSet
    from .io import images

    return [(images.read_rgb(r), images.read_rgb(c)) for r, c in PairSet.from_dir(folder).pairs()]


def still_sets(model: ModelInfo, data_root: Path = DATA_ROOT, out_root: Path = Path("runs/devsets")
               ) -> list[DevSet]:
    """The single-image dev sets (:func:`stream_derain.devsets.dev_sets`), each image in
    every slot of the window (as ``stream-derain eval`` runs them)."""
    from .devsets import dev_sets

    def loader(folder: Path) -> Callable[[], list[tuple[Window, np.ndarray]]]:
        return lambda: [(Window((r,) * model.frames), c) for r, c in _paired(folder)]

    return [DevSet(f.name, loader(f), f.name.endswith("_clean")) for f in dev_sets(data_root, out_root)]


def video_sets(model: ModelInfo, data_root: Path = DATA_ROOT, root: Path = DEV_VIDEO_ROOT,
               step: int = DEV_VIDEO_STEP) -> list[DevSet]:
    """The dev video clips (:mod:`stream_derain.devvideo`, rendered when missing): every
    ``step``-th frame a target, its window the clip's frames at the centred offsets."""
    from .devvideo import render_all

    folders = render_all(root, data_root)
    offsets = model.window("centred")

    def loader(folder: Path) -> Callable[[], list[tuple[Window, np.ndarray]]]:
        def load() -> list[tuple[Window, np.ndarray]]:
            pairs = _paired(folder)
            rainy = [r for r, _ in pairs]
            return [(aligned(window_at(rainy, i, offsets), model), pairs[i][1])
                    for i in range(0, len(pairs), step)]
        return load

    return [DevSet(f"video/{f.name}", loader(f), f.name.endswith("_clean")) for f in folders]


def _figures(out: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    from .metrics import brightness_bias, detail_ratio, psnr, rgb_to_y

    return {"psnr_y": min(psnr(rgb_to_y(out), rgb_to_y(gt)), 100.0), "bias": brightness_bias(out, gt),
            "detail": detail_ratio(out, gt)}


def _means(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}


def _infer(backend: Any, window: Window) -> np.ndarray:
    return backend.infer(np.concatenate(window.frames, axis=2)[None])[0]


def check_int8(model: ModelInfo, sets: Sequence[DevSet],
               backends: Sequence[str] = ("openvino", "onnxruntime"), gate: dict[str, float] | None = None,
               threads: int = 0) -> dict[str, Any]:
    """The INT8 file of ``model`` against its FP32 file (ONNX Runtime) on ``sets``, on each
    of ``backends`` that is installed: per set and backend the agreement (PSNR-Y of INT8's
    output against FP32's, mean and worst frame) and the figures against the ground truth
    (PSNR-Y, bias, detail) beside FP32's; per backend the verdict of ``gate`` (:data:`GATE`)."""
    from .backends import installed
    from .backends.onnxruntime import OnnxRuntimeBackend
    from .metrics import psnr, rgb_to_y

    gate = {**GATE, **(gate or {})}
    names = [b for b in backends if installed(b)]
    if not names:
        raise ConfigError(f"none of {', '.join(backends)} is installed")
    runners = {"fp32": OnnxRuntimeBackend(model, "fp32", threads=threads)}
    for name in names:
        if name == "openvino":
            from .backends.openvino import OpenVINOBackend

            runners[name] = OpenVINOBackend(model, "int8", threads=threads)
        elif name == "onnxruntime":
            runners[name] = OnnxRuntimeBackend(model, "int8", threads=threads)
        else:
            raise ConfigError(f"int8 runs on openvino or onnxruntime, not {name}")
    result: dict[str, Any] = {"sets": {}, "checks": {}}
    with ExitStack() as stack:
        for be in runners.values():
            stack.enter_context(be)
        for name in names:
            result.setdefault("runtime", {})[name] = runners[name].describe()
        for dev in sets:
            rows: dict[str, list[dict[str, float]]] = {k: [] for k in runners}
            agree: dict[str, list[float]] = {k: [] for k in names}
            for window, gt in dev.load():
                ref = _infer(runners["fp32"], window)
                rows["fp32"].append(_figures(ref, gt))
                for name in names:
                    out = _infer(runners[name], window)
                    rows[name].append(_figures(out, gt))
                    agree[name].append(min(psnr(rgb_to_y(out), rgb_to_y(ref)), 100.0))
            entry: dict[str, Any] = {"frames": len(rows["fp32"]), "rain_free": dev.rain_free,
                                     "fp32": _means(rows["fp32"])}
            for name in names:
                m = _means(rows[name])
                entry[name] = {**m, "agreement_db": round(float(np.mean(agree[name])), 2),
                               "agreement_min_db": round(float(np.min(agree[name])), 2),
                               "delta_db": round(m["psnr_y"] - entry["fp32"]["psnr_y"], 4)}
            result["sets"][dev.name] = entry
            log.info("%s: fp32 %.2f dB; %s", dev.name, entry["fp32"]["psnr_y"], "; ".join(
                f"{n} int8 {entry[n]['psnr_y']:.2f} dB ({entry[n]['delta_db']:+.3f}), "
                f"{entry[n]['agreement_db']:.1f} dB vs fp32" for n in names))
    for name in names:
        result["checks"][name] = verdict(result["sets"], name, gate)
    result["gate"] = gate
    return result


def verdict(sets: dict[str, Any], backend: str, gate: dict[str, float]) -> dict[str, Any]:
    """The gate's verdict for ``backend`` over the per-set figures of :func:`check_int8`."""
    failures = []
    for name, s in sets.items():
        b, f = s[backend], s["fp32"]
        if b["agreement_db"] < gate["min_agreement_db"]:
            failures.append(f"{name}: {b['agreement_db']:.2f} dB vs fp32 < {gate['min_agreement_db']}")
        harmless = s["rain_free"] and min(b["psnr_y"], f["psnr_y"]) >= gate["harmless_db"]
        if abs(b["delta_db"]) > gate["max_delta_db"] and not harmless:
            failures.append(f"{name}: PSNR-Y {b['delta_db']:+.3f} dB vs fp32's (> {gate['max_delta_db']})")
        if s["rain_free"]:
            if abs(b["bias"] - f["bias"]) > gate["max_bias_delta"]:
                failures.append(f"{name}: bias {b['bias']:+.3f} vs fp32's {f['bias']:+.3f} levels")
            if abs(b["detail"] - f["detail"]) > gate["max_detail_delta"]:
                failures.append(f"{name}: detail {b['detail']:.4f} vs fp32's {f['detail']:.4f}")
    agreements = [s[backend]["agreement_db"] for s in sets.values()]
    deltas = [abs(s[backend]["delta_db"]) for s in sets.values()]
    return {"passed": not failures, "failures": failures, "sets": len(sets),
            "min_agreement_db": round(min(agreements), 2) if agreements else None,
            "mean_agreement_db": round(float(np.mean(agreements)), 2) if agreements else None,
            "max_abs_delta_db": round(max(deltas), 4) if deltas else None}


# --- the manifest and the one call -----------------------------------------------------------

def write_entry(folder: Path, name: str, entry: dict[str, Any], default: bool = True) -> None:
    """Replace model ``name``'s entry in ``folder``'s manifest (created if missing; the
    default model is kept, or made ``name`` when there is none and ``default``), written
    atomically."""
    path = folder / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    manifest.setdefault("models", {})[name] = entry
    if default:
        manifest.setdefault("default", name)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _source_entry(model: ModelInfo) -> dict[str, Any]:
    """The model's manifest entry (a user's file without one: the least a manifest needs)."""
    from .models import _exported_entry

    fp32 = model.path("fp32")
    meta = model.meta or _exported_entry(fp32)  # a user's file: the export's entry beside it
    if meta:
        return json.loads(json.dumps(meta))
    return {"version": model.version, "multiple": model.multiple, "input": model.input_name,
            "output": model.output_name, "frames": model.frames,
            "offsets": {k: list(v) for k, v in model.offsets.items()},
            "files": {"fp32": {"file": fp32.name, "sha256": sha256(fp32)}}}


def _copy_stills(entry: dict[str, Any], src: Path, out: Path) -> None:
    """A model whose entry names another for still images (``stills``, v4): that model's
    entry and files too, so that ``out`` runs on its own (``STREAM_DERAIN_ENGINES=out``)."""
    import shutil

    name = entry.get("stills")
    have = json.loads((out / MANIFEST).read_text()).get("models", {}) if (out / MANIFEST).is_file() else {}
    if not name or name in have or not (src / MANIFEST).is_file():
        return
    stills = json.loads((src / MANIFEST).read_text()).get("models", {}).get(name)
    if not stills:
        return
    for f in stills.get("files", {}).values():
        for key in ("file", "weights"):
            if f.get(key) and (src / f[key]).is_file():
                shutil.copy2(src / f[key], out / f[key])
    write_entry(out, name, stills, default=False)


@dataclass
class QuantizeResult:
    """What :func:`quantize_model` did: the INT8 file, the manifest it recorded it in and
    the record (``int8``), whose ``checks`` hold each backend's verdict."""

    path: Path
    manifest: Path
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> list[str]:
        return [b for b, c in self.record.get("checks", {}).items() if c.get("passed")]


def quantize_model(spec: str | Path | None = None, out: Path | None = None,
                   settings: QuantizeSettings = QuantizeSettings(), data_root: Path = DATA_ROOT,
                   backends: Sequence[str] = ("openvino", "onnxruntime"), check: bool = True,
                   dev_video_step: int = DEV_VIDEO_STEP, windows: Sequence[Window] | None = None,
                   sets: Sequence[DevSet] | None = None, threads: int = 0,
                   openvino_ir: bool = True) -> QuantizeResult:
    """Quantize model ``spec`` (a manifest name or an ONNX file; None: the default model)
    to INT8, check it against FP32 on the dev frames and record it in the manifest.

    ``out``: the folder to write to (default: the model's own folder, beside its FP32
    file); another folder gets copies of the FP32/FP16 files and a manifest of its own, so
    that experiments leave the shipped models alone (``STREAM_DERAIN_ENGINES=out`` runs
    them). ``windows`` / ``sets`` replace the calibration windows and the dev sets drawn
    from ``data_root`` (tests); ``check=False`` records the file without a verdict
    (``auto`` then never chooses it). ``openvino_ir``: also write the OpenVINO IR
    (``<name>.int8.xml``/``.bin``, ``files.int8_openvino``) that OpenVINO runs instead of
    the ONNX file, where openvino is installed."""
    import shutil

    from .models import resolve_model

    model = resolve_model(spec)
    fp32 = model.path("fp32")
    src = fp32.parent
    out = Path(out) if out is not None else src
    out.mkdir(parents=True, exist_ok=True)
    entry = _source_entry(model)
    if out.resolve() != src.resolve():
        for precision, path in model.files.items():
            if precision != "int8" and path.is_file():
                shutil.copy2(path, out / path.name)
        _copy_stills(entry, src, out)
    fp32_sha = sha256(fp32)
    int8_path = out / int8_file_name(fp32.name)
    if windows is None:
        windows = calibration_windows(model, settings.windows, settings.size, data_root, settings.seed)
    ignored = quantize_onnx(fp32, windows, int8_path, settings, model.input_name)
    files = entry.setdefault("files", {})
    files["int8"] = {"file": int8_path.name, "sha256": sha256(int8_path)}
    files.pop(OPENVINO_INT8, None)
    if openvino_ir and has_module("openvino"):
        xml = int8_path.with_suffix(".xml")
        weights = quantize_openvino(fp32, windows, xml, ignored, settings)
        files[OPENVINO_INT8] = {"file": xml.name, "sha256": sha256(xml), "weights": weights.name,
                                "weights_sha256": sha256(weights)}
    record: dict[str, Any] = {
        "fp32_sha256": fp32_sha, "tool": f"nncf {nncf_version()}",
        "format": {"int8": "onnx-qdq", **({OPENVINO_INT8: "openvino-ir"} if OPENVINO_INT8 in files else {})},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings.as_dict(ignored),
        "calibration": {"windows": len(windows), "frames_per_window": model.frames,
                        "sources": [f"{s.folder}/{s.pattern}" if s.pattern != "*" else s.folder
                                    for s in CALIBRATION_SOURCES] if sets is None else "given"},
        "gate": dict(GATE), "checks": {},
    }
    if check:
        target = ModelInfo(name=model.name, version=model.version,
                           files={"fp32": out / fp32.name, **{k: out / v["file"] for k, v in files.items()
                                                              if k in ("int8", OPENVINO_INT8)}},
                           multiple=model.multiple,
                           input_name=model.input_name, output_name=model.output_name, meta=entry,
                           frames=model.frames, offsets=model.offsets)
        if sets is None:
            sets = still_sets(model, data_root) + video_sets(model, data_root, step=dev_video_step)
        result = check_int8(target, sets, backends, threads=threads)
        record.update(checks=result["checks"], sets=result["sets"], runtime=result.get("runtime", {}))
    entry["int8"] = record
    write_entry(out, model.name, entry)
    for name, c in record["checks"].items():
        log.info("int8 on %s: %s (worst set %.2f dB vs fp32, worst dev-set change %.3f dB)%s", name,
                 "passed" if c["passed"] else "FAILED", c["min_agreement_db"], c["max_abs_delta_db"],
                 "" if c["passed"] else ": " + "; ".join(c["failures"][:4]))
    return QuantizeResult(int8_path, out / MANIFEST, record)
