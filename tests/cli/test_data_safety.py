"""Issue 13, points 1-4: the input is never touched, failed runs leave nothing at the
output path, a run without frames is an error, small frames never crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_derain_cli import cli, frames_in, one_line_error, partials

from stream_derain.errors import OutputError
from stream_derain.io.video import VideoWriter


def test_hard_link_to_the_input_is_refused(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=4, audio=False)
    before = src.read_bytes()
    os.link(src, tmp_path / "hard.mp4")
    one_line_error(cli("derain", tmp_path / "hard.mp4", "-o", src, "--overwrite"), "overwrite the input")
    os.symlink(src, tmp_path / "soft.mp4")
    one_line_error(cli("derain", src, "-o", tmp_path / "soft.mp4", "--overwrite"), "overwrite the input")
    assert src.read_bytes() == before


def test_a_failing_run_leaves_no_file_and_keeps_the_old_output(make_clip, use_tiny_model, tmp_path,
                                                               monkeypatch):
    src = make_clip("in.mp4", frames=8, audio=False)
    out = tmp_path / "out.mp4"
    real = VideoWriter.write_frame

    def failing(self, item):
        if self.frames == 3:
            raise OutputError(f"disk full while writing {self.path}")
        real(self, item)

    monkeypatch.setattr(VideoWriter, "write_frame", failing)
    one_line_error(cli("derain", src, "-o", out, "--no-smooth"), "disk full")
    assert not out.exists() and not partials(tmp_path)
    out.write_bytes(b"older output")
    one_line_error(cli("derain", src, "-o", out, "--no-smooth", "--overwrite"), "disk full")
    assert out.read_bytes() == b"older output" and not partials(tmp_path)


@pytest.mark.slow
def test_sigkill_leaves_nothing_at_the_output_path(make_clip, use_tiny_model, tmp_path):
    src = make_clip("long.mp4", frames=300, size=(320, 240), audio=False)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "stream_derain", "derain", str(src), "-o", str(out),
                             "--no-smooth"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not partials(tmp_path):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()


def test_zero_frames_is_an_error(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=6, audio=False)
    out = tmp_path / "out.mp4"
    one_line_error(cli("derain", src, "-o", out, "--start", "500"), "past the end", "6 frames")
    assert not out.exists() and not partials(tmp_path)
    out.write_bytes(b"older output")
    one_line_error(cli("derain", src, "-o", out, "--start", "500", "--overwrite"), "past the end")
    assert out.read_bytes() == b"older output"


@pytest.mark.parametrize("size", [(640, 44), (200, 60), (30, 20), (44, 640)])
def test_small_frames_do_not_crash_the_smoother(make_clip, use_tiny_model, tmp_path, size):
    """DIS optical flow segfaults on 1/4-size frames 9-15 px high; frames under 64 px
    a side pass unsmoothed with a warning (a subprocess: a segfault must not kill pytest)."""
    src = make_clip("thin.mp4", frames=5, size=size, audio=False, pix_fmt="yuv444p")
    out = tmp_path / "out.mp4"
    run = subprocess.run([sys.executable, "-m", "stream_derain", "derain", str(src), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "too small for the temporal smoother" in run.stderr
    assert frames_in(out) == 5


def test_output_path_is_never_a_partial_file_after_success(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=4, audio=False)
    assert cli("derain", src, "-o", tmp_path / "o.mp4", "--no-smooth", "-q").exit_code == 0
    assert frames_in(tmp_path / "o.mp4") == 4 and not partials(tmp_path)
    assert not any(p.name.startswith(".") for p in Path(tmp_path).iterdir())
