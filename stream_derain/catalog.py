"""The model catalog: the shipped models, where they live and what the manifest says about them.

ONNX models and ``manifest.json`` live in the project's top-level ``engines/``
folder. A wheel carries the same files as package data (``stream_derain/engines``),
so a non-editable install finds them too. ``STREAM_DERAIN_ENGINES`` overrides both.
Built TensorRT engines are cached next to the models when that folder is writable,
else in the user's cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

MANIFEST = "manifest.json"
DEFAULT_MODEL = "derain-student"
WINDOW_MODES = ("centred", "causal")  # which neighbours a multi-frame model sees (see ModelInfo.offsets)
# how a multi-frame model's neighbours are prepared (see ModelInfo.align; the flows: align.FLOWS)
ALIGN_MODES = ("none", "flow", "flow-medium", "flow-chain")


def models_dir() -> Path:
    """The folder holding ``manifest.json`` and the ONNX files."""
    env = os.environ.get("STREAM_DERAIN_ENGINES")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    candidates += [here / "engines", here.parent / "engines"]
    for folder in candidates:
        if (folder / MANIFEST).is_file():
            return folder
    raise ModelError("no shipped models found (looked in " + ", ".join(map(str, candidates))
                     + "); reinstall stream-derain or set STREAM_DERAIN_ENGINES")


def cache_dir() -> Path:
    """Where built engines go: beside the models if writable, else ~/.cache/stream-derain."""
    try:
        folder = models_dir()
        if os.access(folder, os.W_OK):
            return folder
    except ModelError:
        pass
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stream-derain" / "engines"
    base.mkdir(parents=True, exist_ok=True)
    return base


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


OPENVINO_INT8 = "int8_openvino"  # files key of the OpenVINO IR of the INT8 model (.xml, .bin beside it)


def int8_file_name(fp32_name: str) -> str:
    """``derain-student.onnx`` -> ``derain-student.int8.onnx`` (the INT8 file beside it)."""
    stem = fp32_name[:-5] if fp32_name.endswith(".onnx") else fp32_name
    return f"{stem}.int8.onnx"


def file_precision(path: Path) -> str:
    """The precision a model file's name says (``*.fp16.onnx``, ``*.int8.onnx``; else fp32)."""
    return next((p for p in ("int8", "fp16") if p in path.stem), "fp32")


def int8_record(model: ModelInfo) -> dict[str, Any] | None:
    """The manifest's INT8 record (``int8``) of ``model`` when it is current: the model has
    an int8 file and the record was made from the FP32 file the manifest lists now (a model
    re-exported since leaves a stale record, which counts as none)."""
    rec = (model.meta or {}).get("int8")
    if not isinstance(rec, dict) or "int8" not in model.files:
        return None
    fp32 = ((model.meta or {}).get("files") or {}).get("fp32") or {}
    if rec.get("fp32_sha256") and fp32.get("sha256") and rec["fp32_sha256"] != fp32["sha256"]:
        return None
    return rec


def int8_passed(model: ModelInfo, backend: str) -> tuple[bool, str]:
    """(whether ``model``'s INT8 file passed its quality gate on ``backend``, why not / the
    figure), from the manifest (``stream-derain quantize`` writes it)."""
    rec = int8_record(model)
    if rec is None:
        why = "no int8 file" if "int8" not in model.files else "its int8 record is missing or stale"
        return False, f"model {model.name} has {why} (stream-derain quantize makes one)"
    check = (rec.get("checks") or {}).get(backend)
    if not isinstance(check, dict):
        return False, f"model {model.name}'s int8 file was not checked on {backend}"
    if not check.get("passed"):
        failures = check.get("failures") or ["see the manifest"]
        more = f"; {len(failures) - 2} more in the manifest" if len(failures) > 2 else ""
        return False, (f"model {model.name}'s int8 file failed its quality gate on {backend} (worst set "
                       f"{check.get('min_agreement_db')} dB vs fp32): " + "; ".join(failures[:2]) + more)
    return True, (f"passed its quality gate on {backend} ({check.get('min_agreement_db')} dB vs fp32 "
                  f"on the dev frames, worst dev-set change {check.get('max_abs_delta_db')} dB)")


def default_offsets(frames: int) -> dict[str, tuple[int, ...]]:
    """The window of a K-frame model whose manifest lists no offsets: slot 0 the target,
    then ``centred`` -1, +1, -2, +2, ... and ``causal`` -1, -2, ... (K=5: (0, -1, 1, -2, 2)
    and (0, -1, -2, -3, -4))."""
    centred = tuple((j + 1) // 2 * (-1 if j % 2 else 1) for j in range(frames))
    return {"centred": centred, "causal": tuple(-j for j in range(frames))}


def parse_window(entry: dict[str, Any], where: str) -> tuple[int, dict[str, tuple[int, ...]]]:
    """(frames, offsets) of a manifest entry: ``"frames": K`` and ``"offsets": {"centred":
    [...], "causal": [...]}``, both optional (none: a single-frame model; no offsets: the
    defaults for K). Each mode's offsets are K relative frame indices, slot 0 being 0 (the
    target); causal ones are never positive."""
    try:
        frames = int(entry.get("frames", 1))
        given = entry.get("offsets") or {}
        offsets = {**default_offsets(frames), **{k: tuple(int(o) for o in v) for k, v in given.items()}}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{where}: bad frames/offsets ({exc})") from None
    for mode in WINDOW_MODES:
        offs = offsets[mode]
        if frames < 1 or len(offs) != frames or offs[0] != 0:
            raise ModelError(f"{where}: {mode} offsets {list(offs)} must be {frames} offsets starting at 0")
    if max(offsets["causal"]) > 0:
        raise ModelError(f"{where}: causal offsets {list(offsets['causal'])} must not read later frames")
    return frames, offsets


def parse_align(entry: dict[str, Any], where: str) -> str:
    """A manifest entry's ``"align"``: ``"none"`` (absent: the neighbours as decoded) or
    ``"flow"`` (each neighbour warped onto the target by optical flow before the network,
    :func:`stream_derain.align.align_window`)."""
    align = entry.get("align")
    align = "none" if align is None else align
    if align not in ALIGN_MODES:
        raise ModelError(f"{where}: align {align!r}: choose {' or '.join(ALIGN_MODES)}")
    return str(align)


@dataclass(frozen=True)
class ModelInfo:
    """One manifest entry. ``files`` maps precision ('fp32', 'fp16') to a path.

    ``frames`` K: the model's input is K frames stacked on the channel axis (N x 3K x H x W;
    1 for a single-frame model), slot j holding the frame at ``offsets[mode][j]`` relative
    to the target (slot 0, offset 0) in window mode ``centred`` or ``causal``. ``align``:
    ``"flow"`` when the model was trained on windows whose neighbours were warped onto the
    target (:mod:`stream_derain.align`; the infer stages do the same), else ``"none"``."""

    name: str
    version: str
    files: dict[str, Path]
    multiple: int  # H and W must be multiples of this (backends pad and crop)
    input_name: str = "input"
    output_name: str = "output"
    meta: dict[str, Any] = field(default_factory=dict)
    frames: int = 1
    offsets: dict[str, tuple[int, ...]] = field(default_factory=lambda: default_offsets(1))
    align: str = "none"

    @property
    def channels(self) -> int:
        """Input channels: 3 per frame of the window."""
        return 3 * self.frames

    def window(self, mode: str) -> tuple[int, ...]:
        """The slot offsets of window mode ``mode`` (``centred`` or ``causal``)."""
        if mode not in WINDOW_MODES:
            raise ModelError(f"window mode {mode!r}: choose {' or '.join(WINDOW_MODES)}")
        return self.offsets[mode]

    def path(self, precision: str = "fp32") -> Path:
        if precision not in self.files:
            raise ModelError(f"model {self.name} has no {precision} file (has {', '.join(self.files)})")
        p = self.files[precision]
        if not p.is_file():
            raise ModelError(f"model file missing: {p}")
        return p


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    folder = folder or models_dir()
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {folder / MANIFEST}: {exc}") from None


def write_entry(folder: Path, name: str, entry: dict[str, Any], *, merge: bool = False,
                default: str = "if-none", live_default: bool = False) -> None:
    """Write model ``name``'s entry into ``folder``'s manifest (created if missing),
    atomically. ``merge``: update the old entry's keys (an export keeps keys it does not
    write, e.g. ``stills``) instead of replacing the entry. ``default``: ``"make"`` makes
    ``name`` the default model, ``"if-none"`` only when the manifest names none,
    ``"never"`` leaves it. ``live_default``: make ``name`` the model live streams run
    when they name none (:func:`default_name`)."""
    if default not in ("make", "if-none", "never"):
        raise ValueError(f"default {default!r}: make, if-none or never")
    path = folder / MANIFEST
    manifest = read_manifest(folder) if path.is_file() else {"models": {}}
    models = manifest.setdefault("models", {})
    models[name] = {**models.get(name, {}), **entry} if merge else entry
    if default == "make" or (default == "if-none" and "default" not in manifest):
        manifest["default"] = name
    if live_default:
        manifest["live_default"] = name
    tmp = path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


USES = ("files", "live")  # what a run without a named model is for (default_name)


def default_name(manifest: dict[str, Any], use: str = "files") -> str:
    """The model a run uses when it names none: the manifest's ``default`` (files,
    benchmarks, evaluation), or for ``use="live"`` its ``live_default`` where it names
    one (a model that keeps up with a camera where the default may not)."""
    if use not in USES:
        raise ValueError(f"use {use!r}: choose {' or '.join(USES)}")
    live = manifest.get("live_default") if use == "live" else None
    return str(live or manifest.get("default", DEFAULT_MODEL))


def load_model_info(name: str | None = None, folder: Path | None = None, use: str = "files") -> ModelInfo:
    """The manifest entry ``name`` (default: the manifest's default model for ``use``,
    :func:`default_name`)."""
    folder = folder or models_dir()
    manifest = read_manifest(folder)
    name = name or default_name(manifest, use)
    entry = manifest.get("models", {}).get(name)
    if entry is None:
        raise ModelError(f"unknown model {name!r}; shipped: {', '.join(manifest.get('models', {}))}")
    frames, offsets = parse_window(entry, f"model {name}")
    return ModelInfo(
        name=name, version=str(entry["version"]),
        files={k: folder / v["file"] for k, v in entry["files"].items()},
        multiple=int(entry["multiple"]), input_name=entry.get("input", "input"),
        output_name=entry.get("output", "output"), meta=entry, frames=frames, offsets=offsets,
        align=parse_align(entry, f"model {name}"),
    )


def _exported_entry(path: Path) -> dict[str, Any] | None:
    """The manifest entry that ``stream-derain export`` wrote for ``path`` beside it, if
    there is one that lists this file."""
    if not (path.parent / MANIFEST).is_file():
        return None
    try:
        for entry in read_manifest(path.parent).get("models", {}).values():
            if any(f.get("file") == path.name for f in entry.get("files", {}).values()):
                return dict(entry)
    except (ModelError, ValueError, TypeError, KeyError, AttributeError):
        pass
    return None


def onnx_input_channels(path: Path) -> int | None:
    """The fixed channel count of an ONNX model's (first) NCHW input, None when it is
    dynamic or cannot be read. Through ``onnx`` where installed, else an onnxruntime
    session (both imported here only: the runtime has onnxruntime, not always onnx)."""
    try:
        import onnx
    except ImportError:
        onnx = None
    try:
        if onnx is not None:
            graph = onnx.load(str(path), load_external_data=False).graph
            inits = {i.name for i in graph.initializer}
            inp = next(i for i in graph.input if i.name not in inits)
            dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        else:
            import onnxruntime as ort

            dims = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    except Exception:  # noqa: BLE001 - not an ONNX file, a broken one: the backend will say so
        return None
    return dims[1] if len(dims) == 4 and isinstance(dims[1], int) and dims[1] > 0 else None


def model_from_path(path: Path, multiple: int | None = None) -> ModelInfo:
    """A ModelInfo for a user-given ONNX file (not in the manifest). H and W must be
    multiples of ``multiple``; by default of the one its export wrote beside it, else 4.
    Its window (``frames``, ``offsets``) is the manifest's beside it where that lists the
    file, else read from the input's channels (3K fixed, K > 1: the default offsets for K);
    its ``align`` that manifest's too (a file without one: ``"none"``)."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    precision = file_precision(path)
    entry = _exported_entry(path)
    if entry is not None and "frames" in entry:
        frames, offsets = parse_window(entry, str(path))
    else:
        channels = onnx_input_channels(path) or 3
        frames = channels // 3 if channels % 3 == 0 else 1
        offsets = default_offsets(frames)
    try:
        multiple = multiple or (int(entry["multiple"]) if entry else 0) or 4
    except (KeyError, TypeError, ValueError):
        multiple = 4
    align = parse_align(entry, str(path)) if entry is not None else "none"
    return ModelInfo(name=path.stem, version="custom", files={precision: path}, multiple=multiple,
                     meta=entry or {}, frames=frames, offsets=offsets, align=align)


def still_model(model: ModelInfo) -> ModelInfo:
    """The model still images run: the one the manifest entry names as ``stills`` (v4, a
    multi-frame model measured worse on single images than v3, names v3), else ``model``."""
    name = model.meta.get("stills") if model.meta else None
    if not name:
        return model
    folder = next(iter(model.files.values())).parent
    return load_model_info(str(name), folder)


def resolve_model(spec: str | Path | None = None, onnx: Path | None = None,
                  multiple: int | None = None, use: str = "files") -> ModelInfo:
    """The model to run: a shipped one by manifest name (the default model for ``use``
    when ``spec`` and ``onnx`` are both None: :func:`default_name`) or a user's ONNX
    file, given as ``onnx`` or as a ``spec`` that ends in ``.onnx`` or names an existing
    file. ``multiple``: H and W must be multiples of this for a user's file (default: see
    :func:`model_from_path`)."""
    if spec and onnx:
        raise ModelError("give a model name or an ONNX path, not both")
    if onnx:
        return model_from_path(Path(onnx), multiple)
    if spec and (str(spec).endswith(".onnx") or Path(spec).is_file()):
        return model_from_path(Path(spec), multiple)
    return load_model_info(str(spec) if spec else None, use=use)
