"""The one ``resolve_model``: manifest names, ONNX paths and the errors in between."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_derain.errors import ModelError
from stream_derain.models import resolve_model


def test_resolve_model_by_name_and_default(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    assert resolve_model("tiny").name == "tiny"
    assert resolve_model(None).name  # the manifest's default model


def test_resolve_model_from_onnx_path(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    onnx = next(p for p in tiny_model_dir.glob("*.onnx") if "fp16" not in p.stem)
    as_spec = resolve_model(str(onnx))
    as_onnx = resolve_model(None, onnx, multiple=8)
    assert as_spec.version == as_onnx.version == "custom"
    assert as_spec.path("fp32") == as_onnx.path("fp32") == onnx
    assert (as_spec.multiple, as_onnx.multiple) == (4, 8)


def test_resolve_model_errors(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    with pytest.raises(ModelError, match="not both"):
        resolve_model("tiny", tiny_model_dir / "x.onnx")
    with pytest.raises(ModelError, match="not found"):
        resolve_model("missing.onnx")
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model("no-such-model")


def test_an_exported_onnx_file_takes_its_multiple_from_the_manifest_beside_it(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not read here")
    assert resolve_model(onnx).multiple == 4  # no manifest: the student's usual 4
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"default": "m", "models": {"m": {"multiple": 16, "files": {"fp32": {"file": "m.onnx"}}}}}))
    assert resolve_model(onnx).multiple == 16
    assert resolve_model(None, onnx, multiple=8).multiple == 8  # asked for: as asked
    (tmp_path / "other.onnx").write_bytes(b"")
    assert resolve_model(tmp_path / "other.onnx").multiple == 4  # not listed there
