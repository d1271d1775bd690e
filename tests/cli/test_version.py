"""Issue 28: ``stream-derain --version`` names the default model and its version, and never
fails on a manifest it cannot read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_derain_cli import cli

from stream_derain import __version__
from stream_derain import catalog as models
from stream_derain.errors import ModelError


def lines(result) -> list[str]:  # noqa: ANN001 - click's Result
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output, result.output
    return result.output.strip().splitlines()


def write_manifest(folder: Path, entry: dict, name: str = "my-model") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / models.MANIFEST).write_text(json.dumps({"default": name, "models": {name: entry}}))
    return folder


ENTRY = {"version": "7b", "multiple": 4, "files": {"fp32": {"file": "m.onnx", "sha256": "0"}}}


def test_version_names_the_shipped_default_model():
    info = models.load_model_info()
    first, second, third = lines(cli("--version"))
    assert first == f"stream-derain {__version__}"
    # the models beside it (v3 for still images, v4 for live streams), by the names --model takes
    assert third.startswith("also shipped (--model NAME): ")
    assert "derain-student-v3 v3 (still images)" in third
    assert "derain-student v4 (live streams)" in third and f"{info.name} v" not in third
    assert second.startswith(f"model: {info.name}, version {info.version} (")
    assert f"lineage {info.meta['lineage']['lineage_hash']}, from " in second  # issue 27: how it was made
    assert str(models.models_dir()) in second


def test_version_reads_the_manifest_in_use(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(write_manifest(tmp_path / "e", ENTRY)))
    assert lines(cli("--version"))[1] == (f"model: my-model, version 7b (single-frame), lineage unrecorded, "
                                          f"from {tmp_path / 'e'}")


def test_version_names_the_default_models_lineage_hash(tmp_path, monkeypatch):
    entry = {**ENTRY, "lineage": {"lineage_hash": "0123456789abcdef"}}
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(write_manifest(tmp_path / "e", entry)))
    assert ", lineage 0123456789abcdef, from " in lines(cli("--version"))[1]


def test_version_says_how_many_frames_a_multi_frame_model_reads(tmp_path, monkeypatch):
    entry = {**ENTRY, "version": "4", "frames": 5}
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(write_manifest(tmp_path / "e", entry, "derain-student")))
    assert lines(cli("--version"))[1].startswith("model: derain-student, version 4 (5-frame window), ")


@pytest.mark.parametrize("content, reason", [
    ("{not json", "cannot read"),                                        # unreadable
    (json.dumps({"default": "gone", "models": {}}), "unknown model 'gone'"),  # no such entry
    (json.dumps({"models": {"derain-student": {"files": {}}}}), "bad manifest entry"),  # no version
    (json.dumps(["a", "list"]), "bad manifest entry"),                   # not an object
])
def test_version_with_a_broken_manifest_prints_the_package_version_and_why(tmp_path, monkeypatch,
                                                                           content, reason):
    folder = tmp_path / "e"
    folder.mkdir()
    (folder / models.MANIFEST).write_text(content)
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(folder))
    first, second = lines(cli("--version"))
    assert first == f"stream-derain {__version__}"
    assert second.startswith("model: unavailable (") and reason in second, second


def test_version_without_any_models_folder(monkeypatch):
    def nowhere():
        raise ModelError("no shipped models found (looked in /nowhere)")

    monkeypatch.setattr(models, "models_dir", nowhere)
    first, second = lines(cli("--version"))
    assert first == f"stream-derain {__version__}"
    assert second == "model: unavailable (no shipped models found (looked in /nowhere))"


def test_version_from_the_installed_command_line():
    run = subprocess.run([sys.executable, "-m", "stream_derain", "--version"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = run.stdout.splitlines()
    assert out[0] == f"stream-derain {__version__}" and out[1].startswith("model: "), run.stdout
