"""The one ``resolve_model``: manifest names, ONNX paths and the errors in between."""

from __future__ import annotations

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
