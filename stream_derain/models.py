"""Shipped models: where they live and what the manifest says about them.

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


@dataclass(frozen=True)
class ModelInfo:
    """One manifest entry. ``files`` maps precision ('fp32', 'fp16') to a path."""

    name: str
    version: str
    files: dict[str, Path]
    multiple: int  # H and W must be multiples of this (backends pad and crop)
    input_name: str = "input"
    output_name: str = "output"
    meta: dict[str, Any] = field(default_factory=dict)

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


def load_model_info(name: str | None = None, folder: Path | None = None) -> ModelInfo:
    """The manifest entry ``name`` (default: the manifest's default model)."""
    folder = folder or models_dir()
    manifest = read_manifest(folder)
    name = name or manifest.get("default", DEFAULT_MODEL)
    entry = manifest.get("models", {}).get(name)
    if entry is None:
        raise ModelError(f"unknown model {name!r}; shipped: {', '.join(manifest.get('models', {}))}")
    return ModelInfo(
        name=name, version=str(entry["version"]),
        files={k: folder / v["file"] for k, v in entry["files"].items()},
        multiple=int(entry["multiple"]), input_name=entry.get("input", "input"),
        output_name=entry.get("output", "output"), meta=entry,
    )


def _exported_multiple(path: Path) -> int | None:
    """The ``multiple`` that ``stream-derain export`` wrote for ``path`` in the manifest
    beside it, if there is one that lists this file."""
    if not (path.parent / MANIFEST).is_file():
        return None
    try:
        for entry in read_manifest(path.parent).get("models", {}).values():
            if any(f.get("file") == path.name for f in entry.get("files", {}).values()):
                return int(entry["multiple"])
    except (ModelError, ValueError, TypeError, KeyError, AttributeError):
        pass
    return None


def model_from_path(path: Path, multiple: int | None = None) -> ModelInfo:
    """A ModelInfo for a user-given ONNX file (not in the manifest). H and W must be
    multiples of ``multiple``; by default of the one its export wrote beside it, else 4."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    precision = "fp16" if "fp16" in path.stem else "fp32"
    multiple = multiple or _exported_multiple(path) or 4
    return ModelInfo(name=path.stem, version="custom", files={precision: path}, multiple=multiple)


def resolve_model(spec: str | Path | None = None, onnx: Path | None = None,
                  multiple: int | None = None) -> ModelInfo:
    """The model to run: a shipped one by manifest name (the default model when ``spec``
    and ``onnx`` are both None) or a user's ONNX file, given as ``onnx`` or as a ``spec``
    that ends in ``.onnx`` or names an existing file. ``multiple``: H and W must be
    multiples of this for a user's file (default: see :func:`model_from_path`)."""
    if spec and onnx:
        raise ModelError("give a model name or an ONNX path, not both")
    if onnx:
        return model_from_path(Path(onnx), multiple)
    if spec and (str(spec).endswith(".onnx") or Path(spec).is_file()):
        return model_from_path(Path(spec), multiple)
    return load_model_info(str(spec) if spec else None)
