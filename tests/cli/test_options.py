"""Issue 13, points 5-6: bad options and odd outputs give one ``Error:`` line (exit 1),
checked before any frame is decoded, with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_derain_cli import cli, frames_in, one_line_error, partials


@pytest.mark.parametrize("args,words", [
    (["--crf", "-5"], ["--crf -5", "0-51"]),
    (["--crf", "99"], ["--crf 99", "0-51"]),
    (["--codec", "libvpx-vp9", "--crf", "70"], ["0-63"]),
    (["--preset", "warpspeed"], ["warpspeed", "veryslow"]),
    (["--codec", "aac"], ["audio encoder"]),
    (["--codec", "x264"], ["did you mean libx264"]),
    (["--pix-fmt", "rgb24"], ["cannot encode rgb24"]),
    (["--pix-fmt", "nonsense"], ["unknown pixel format"]),
    (["--bitrate", "fast"], ["--bitrate"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0].startswith("-") else "")
def test_bad_encoder_options(make_clip, use_tiny_model, tmp_path, args, words):
    src = make_clip("in.mp4", frames=2, audio=False)
    one_line_error(cli("derain", src, "-o", tmp_path / "o.mp4", *args), *words)
    assert not (tmp_path / "o.mp4").exists() and not partials(tmp_path)


def test_odd_size_with_a_subsampled_pix_fmt(make_clip, use_tiny_model, tmp_path):
    src = make_clip("odd.mkv", frames=2, size=(95, 63), pix_fmt="yuv444p", audio=False)
    one_line_error(cli("derain", src, "-o", tmp_path / "o.mkv", "--pix-fmt", "yuv420p"), "odd frame size")


@pytest.mark.parametrize("name", ["noext", "out.txt"])
def test_output_without_a_video_extension(make_clip, use_tiny_model, tmp_path, name):
    src = make_clip("in.mp4", frames=2, audio=False)
    one_line_error(cli("derain", src, "-o", tmp_path / name, "--no-smooth"), "container format", name)
    assert not partials(tmp_path)


def test_an_existing_folder_as_output_takes_the_file(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=3, audio=False)
    (tmp_path / "dest").mkdir()
    result = cli("derain", src, "-o", tmp_path / "dest", "--no-smooth")
    assert result.exit_code == 0, result.output
    assert frames_in(tmp_path / "dest" / "in.mp4") == 3


def test_unavailable_encoder_says_why(make_clip, use_tiny_model, tmp_path):
    if Path("/dev/nvidiactl").exists():
        pytest.skip("an NVIDIA driver is present: NVENC may open")
    src = make_clip("in.mp4", frames=2, audio=False)
    one_line_error(cli("derain", src, "-o", tmp_path / "o.mp4", "--codec", "h264_nvenc"), "NVIDIA")


def test_a_stream_url_points_to_live(use_tiny_model):
    one_line_error(cli("derain", "rtsp://127.0.0.1:9/x"), "rtsp://127.0.0.1:9/x", "stream-derain live")


def test_live_port_out_of_range(use_tiny_model):
    one_line_error(cli("live", "rtsp://127.0.0.1:9/x", "--preview-port", "80800"), "80800")


def test_fifo_input_is_read_once(make_clip, use_tiny_model, tmp_path):
    """Point 8: a FIFO was opened twice (a probe, then the reader) and hung for ever."""
    import faulthandler
    import os
    import threading

    src = make_clip("in.mkv", frames=4, audio=False)
    fifo = tmp_path / "pipe.mkv"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(src.read_bytes()), daemon=True)
    feeder.start()
    faulthandler.dump_traceback_later(60, exit=True)  # a hang ends the run, with stacks
    try:
        result = cli("derain", fifo, "-o", tmp_path / "o.mkv", "--no-smooth")
    finally:
        faulthandler.cancel_dump_traceback_later()
    feeder.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert frames_in(tmp_path / "o.mkv") == 4
