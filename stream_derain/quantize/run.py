"""Quantize a model end to end: calibrate, write the INT8 files, check them, record the
verdict in the manifest (:func:`quantize_model`)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..calibration import CALIBRATION_SOURCES, Window, calibration_windows
from ..catalog import MANIFEST, OPENVINO_INT8, ModelInfo, int8_file_name, sha256, write_entry
from ..devices import has_module
from ..devsets import DATA_ROOT
from .gate import DEV_VIDEO_STEP, GATE, DevSet, check_int8, still_sets, video_sets
from .nncf_run import QuantizeSettings, nncf_version, output_tail, quantize_onnx, quantize_openvino

log = logging.getLogger(__name__)


def _source_entry(model: ModelInfo) -> dict[str, Any]:
    """The model's manifest entry (a user's file without one: the least a manifest needs)."""
    from ..catalog import _exported_entry

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
    write_entry(out, name, stills, default="never")


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
    from ..catalog import resolve_model

    model = resolve_model(spec)
    out = Path(out) if out is not None else model.path("fp32").parent
    entry = _prepare_out(model, out)
    if windows is None:
        windows = calibration_windows(model, settings.windows, settings.size, data_root, settings.seed)
    int8_path, ignored = _write_int8(model, entry, out, windows, settings, openvino_ir)
    record = _record(model, entry, windows, settings, ignored, given=sets is not None)
    if check:
        if sets is None:
            sets = still_sets(model, data_root) + video_sets(model, data_root, step=dev_video_step)
        result = check_int8(_quantized(model, entry, out), sets, backends, threads=threads)
        record.update(checks=result["checks"], sets=result["sets"], runtime=result.get("runtime", {}))
    entry["int8"] = record
    write_entry(out, model.name, entry)
    for name, c in record["checks"].items():
        log.info("int8 on %s: %s (worst set %.2f dB vs fp32, worst dev-set change %.3f dB)%s", name,
                 "passed" if c["passed"] else "FAILED", c["min_agreement_db"], c["max_abs_delta_db"],
                 "" if c["passed"] else ": " + "; ".join(c["failures"][:4]))
    return QuantizeResult(int8_path, out / MANIFEST, record)


def _prepare_out(model: ModelInfo, out: Path) -> dict[str, Any]:
    """Create ``out``; another folder than the model's gets copies of its FP32/FP16 files
    (and of the stills model's). Returns the model's manifest entry to extend."""
    import shutil

    src = model.path("fp32").parent
    out.mkdir(parents=True, exist_ok=True)
    entry = _source_entry(model)
    if out.resolve() != src.resolve():
        for precision, path in model.files.items():
            if precision != "int8" and path.is_file():
                shutil.copy2(path, out / path.name)
        _copy_stills(entry, src, out)
    return entry


def _write_int8(model: ModelInfo, entry: dict[str, Any], out: Path, windows: Sequence[Window],
                settings: QuantizeSettings, openvino_ir: bool) -> tuple[Path, list[str]]:
    """The QDQ ONNX file (and the OpenVINO IR where openvino is installed), recorded in
    ``entry["files"]``; returns the ONNX file and the nodes kept in floating point."""
    fp32 = model.path("fp32")
    int8_path = out / int8_file_name(fp32.name)
    controlled = None  # NNCF's accuracy-controlled OpenVINO model, written as the IR
    if settings.accuracy_db is not None:  # more layers in floating point, found on held-out windows
        import onnx

        from .accuracy import accuracy_kept, split_windows

        base = list(settings.ignored) if settings.ignored is not None else output_tail(onnx.load(str(fp32)))
        kept, controlled = accuracy_kept(fp32, windows, base, settings)
        settings = replace(settings, ignored=tuple(base + kept))
        windows = split_windows(windows)[0]
    ignored = quantize_onnx(fp32, windows, int8_path, settings, model.input_name)
    files = entry.setdefault("files", {})
    files["int8"] = {"file": int8_path.name, "sha256": sha256(int8_path)}
    files.pop(OPENVINO_INT8, None)
    if openvino_ir and has_module("openvino"):
        xml = int8_path.with_suffix(".xml")
        weights = quantize_openvino(fp32, windows, xml, ignored, settings, controlled)
        files[OPENVINO_INT8] = {"file": xml.name, "sha256": sha256(xml), "weights": weights.name,
                                "weights_sha256": sha256(weights)}
    return int8_path, ignored


def _record(model: ModelInfo, entry: dict[str, Any], windows: Sequence[Window], settings: QuantizeSettings,
            ignored: list[str], given: bool) -> dict[str, Any]:
    """The manifest's ``int8`` record before the check: the FP32 file it was made from,
    the tool, formats, settings, calibration and gate."""
    files = entry["files"]
    return {
        "fp32_sha256": sha256(model.path("fp32")), "tool": f"nncf {nncf_version()}",
        "format": {"int8": "onnx-qdq", **({OPENVINO_INT8: "openvino-ir"} if OPENVINO_INT8 in files else {})},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings.as_dict(ignored),
        "calibration": {"windows": len(windows), "frames_per_window": model.frames,
                        "sources": [f"{s.folder}/{s.pattern}" if s.pattern != "*" else s.folder
                                    for s in CALIBRATION_SOURCES] if not given else "given"},
        "gate": dict(GATE), "checks": {},
    }


def _quantized(model: ModelInfo, entry: dict[str, Any], out: Path) -> ModelInfo:
    """The model as written to ``out``: its FP32 file and the INT8 files."""
    files = entry["files"]
    return ModelInfo(name=model.name, version=model.version,
                     files={"fp32": out / model.path("fp32").name,
                            **{k: out / v["file"] for k, v in files.items() if k in ("int8", OPENVINO_INT8)}},
                     multiple=model.multiple, input_name=model.input_name, output_name=model.output_name,
                     meta=entry, frames=model.frames, offsets=model.offsets)
