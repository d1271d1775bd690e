"""Fixtures for the TensorRT tests: an isolated engine cache and a buildability probe.

Build tests need a flavour that can build here: TensorRT-RTX builds without a GPU,
standard TensorRT only with one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def engine_cache(tmp_path: Path):  # noqa: ANN201 - EngineCache
    from stream_derain.trt.cache import EngineCache

    return EngineCache(tmp_path / "engines")


@pytest.fixture
def can_build() -> None:
    """Skip unless the chosen TensorRT flavour can build engines on this machine."""
    from stream_derain.errors import StreamDerainError
    from stream_derain.trt import probe

    try:
        info = probe.load()
        probe.choose_target(info, None, probe.gpu_info())
    except StreamDerainError as exc:
        pytest.skip(f"cannot build TensorRT engines here: {exc}")


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the tiny model folder, made the shipped-models folder."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("*.plan", "*.json.tmp", "*.lock"))
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(folder))
    return folder
