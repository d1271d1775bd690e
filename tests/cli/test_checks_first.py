"""Every check before any work: a bad input or output is one ``Error:`` line, and no
backend (no model) was created for it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from stream_derain import engine_spec
from stream_derain.cli import app
from stream_derain.io import images

runner = CliRunner()


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every backend created (by any front door) instead of creating it."""
    made: list[str] = []

    def create(name, *args, **kwargs):  # noqa: ANN001, ANN202
        made.append(name)
        raise AssertionError("a backend was created before the checks failed")

    monkeypatch.setattr(engine_spec, "create_backend", create)
    return made


def error_line(*args: object, code: int = 1) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_output_without_extension(make_clip, tmp_path: Path, backends: list[str]) -> None:
    line = error_line("derain", make_clip(), "-o", tmp_path / "out")
    assert "no container format" in line and "'(none)'" in line
    assert not backends and not (tmp_path / "out").exists()


def test_image_output_for_a_video(make_clip, tmp_path: Path, backends: list[str]) -> None:
    line = error_line("derain", make_clip(), "-o", tmp_path / "out.png")
    assert "must be a video file" in line
    assert not backends and not (tmp_path / "out.png").exists()


def test_video_output_for_an_image(tmp_path: Path, backends: list[str]) -> None:
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), np.full((32, 48, 3), 128, np.uint8))
    for name in ("out", "out.mp4"):
        line = error_line("derain", image, "-o", tmp_path / name)
        assert "still.png is an image: -o names an image file (e.g. out.png)" in line, line
        assert not backends and not (tmp_path / name).exists()


def test_container_that_cannot_hold_the_codec(make_clip, tmp_path: Path, backends: list[str]) -> None:
    # WAV holds audio only: no video codec to fall back to
    line = error_line("derain", make_clip(), "-o", tmp_path / "out.wav")
    assert "wav cannot hold libx264" in line
    assert not backends


def test_input_that_is_not_media(tmp_path: Path, backends: list[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video\n")
    line = error_line("derain", notes, "-o", tmp_path / "out.mp4")
    assert "notes.txt" in line and "not a video or image" in line
    assert not backends and notes.read_text() == "not a video\n"


def test_media_without_video(tmp_path: Path, backends: list[str]) -> None:
    import av

    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    line = error_line("derain", path, "-o", tmp_path / "out.mp4")
    assert "no video stream" in line
    assert not backends


@pytest.mark.parametrize("given", ["out.mp4", "out.png"])
def test_folder_input_with_a_file_output(tmp_path: Path, backends: list[str], given: str) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    images.write_image(frames / "a.png", np.zeros((16, 16, 3), np.uint8))
    line = error_line("derain", frames, "-o", tmp_path / given)
    assert "names a file" in line and "folder" in line
    assert not backends and not (tmp_path / given).exists()


def test_no_input_is_one_line(backends: list[str]) -> None:
    line = error_line("derain", code=2)
    assert line == "Error: no input given; see stream-derain derain -h"
    assert error_line("live", code=2) == "Error: no stream URL given; see stream-derain live -h"
    assert not backends


def test_library_checks_before_the_backend(make_clip, tmp_path: Path, backends: list[str]) -> None:
    from stream_derain.derain import DerainConfig, derain
    from stream_derain.errors import StreamDerainError

    with pytest.raises(StreamDerainError, match="must be a video file"):
        derain(DerainConfig(input=make_clip(), output=tmp_path / "out.jpg"))
    assert not backends
