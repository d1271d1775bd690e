"""Issue 30, items 6-10: long names, eval on odd clips, early signals, names with a
colon, outputs that appear during a run, --skip-existing on one file, leftovers of
killed runs and SIGHUP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_derain_cli import cli, frames_in, one_line_error, partials

from stream_derain.io.video import VideoWriter


def size_change_ts(path: Path) -> Path:
    """An MPEG-TS whose one video stream goes from 64x48 to 128x96 (two encoders)."""
    c = av.open(str(path), "w", format="mpegts")
    v = c.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    encoders = [v.codec_context, av.CodecContext.create("libx264", "w")]
    encoders[1].width, encoders[1].height, encoders[1].pix_fmt = 128, 96, "yuv420p"
    encoders[1].time_base, encoders[1].framerate = Fraction(1, 25), Fraction(25)
    for k, enc in enumerate(encoders):
        for i in range(8):
            img = np.full((enc.height, enc.width, 3), (i * 30) % 256, np.uint8)
            img[:, enc.width // 2:] = 255 - img[:, enc.width // 2:]
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = 8 * k + i, Fraction(1, 25)
            for p in [*enc.encode(f), *(enc.encode(None) if i == 7 else [])]:
                p.stream = v
                c.mux(p)
    c.close()
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# item 6: tracebacks


def test_an_output_name_too_long_is_an_error(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=3, audio=False)
    one_line_error(cli("derain", src, "-o", tmp_path / ("b" * 252 + ".mp4")), "too long")
    long_input = make_clip("a" * 246 + ".mp4", frames=3, audio=False)  # its default output is 259 bytes
    one_line_error(cli("derain", long_input), "too long", "-o")
    assert not partials(tmp_path)


def test_a_long_valid_output_name_works(make_clip, use_tiny_model, tmp_path):
    """250 bytes fit, the temporary name (.NAME.partial-PID.mp4) is shortened to fit too."""
    src = make_clip("in.mp4", frames=3, audio=False)
    out = tmp_path / ("c" * 246 + ".mp4")
    result = cli("derain", src, "-o", out, "--no-smooth")
    assert result.exit_code == 0, result.output
    assert frames_in(out) == 3 and not partials(tmp_path)


def test_eval_on_tiny_and_size_changing_clips(make_clip, tmp_path):
    tiny = make_clip("tiny.mp4", frames=3, size=(2, 2), pix_fmt="yuv444p", audio=False)
    one_line_error(cli("eval", tiny), "too small")
    changing = size_change_ts(tmp_path / "up.ts")
    result = cli("eval", changing, "--reference", changing)
    assert result.exit_code == 0, result.output
    assert "16 frames" in result.output and "Traceback" not in result.output


def test_a_signal_while_starting_is_not_a_traceback(tmp_path):
    """The start-up handler of cli.common (the imports take about a second): exit 130 and
    one line. The import chain is the CLI's: cli/__init__ should import common first."""
    code = ("import os, signal, sys, time; sys.argv[0] = 'stream-derain'; "
            "import stream_derain.cli.common; os.kill(os.getpid(), signal.SIGINT); time.sleep(5)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 130 and "Traceback" not in run.stderr
    assert run.stderr.strip() == "Interrupted (nothing written)"


# item 7: names are paths


def test_a_name_with_a_colon_is_that_file(make_clip, use_tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_clip("x.mp4", frames=7, audio=False)
    make_clip("file:x.mp4", frames=4, audio=False)
    result = cli("derain", "file:x.mp4", "-o", "c:out.mp4", "--no-smooth")
    assert result.exit_code == 0, result.output
    assert frames_in(tmp_path / "c:out.mp4") == 4  # not x.mp4's 7
    os.remove("x.mp4")
    assert cli("derain", "file:x.mp4", "-o", "o2.mp4", "--no-smooth").exit_code == 0
    assert frames_in(tmp_path / "o2.mp4") == 4


# item 8: an output that appears during the run


def test_an_output_created_during_the_run_is_not_replaced(make_clip, use_tiny_model, tmp_path, monkeypatch):
    src = make_clip("in.mp4", frames=8, audio=False)
    out = tmp_path / "out.mp4"
    real = VideoWriter.write_frame

    def meanwhile(self, item):
        if self.frames == 3:
            out.write_bytes(b"another program's file")
        real(self, item)

    monkeypatch.setattr(VideoWriter, "write_frame", meanwhile)
    one_line_error(cli("derain", src, "-o", out, "--no-smooth"), "created by something else", "--overwrite")
    assert out.read_bytes() == b"another program's file" and not partials(tmp_path)
    out.unlink()
    monkeypatch.setattr(VideoWriter, "write_frame", real)
    assert cli("derain", src, "-o", out, "--no-smooth").exit_code == 0 and frames_in(out) == 8


def test_overwrite_replaces_the_file_that_was_there(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=4, audio=False)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    assert cli("derain", src, "-o", out, "--no-smooth", "--overwrite").exit_code == 0
    assert frames_in(out) == 4


# item 9: --skip-existing on one file


def test_skip_existing_redoes_a_short_output_of_one_file(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=12, audio=False)
    out = tmp_path / "out.mp4"
    assert cli("derain", src, "-o", out, "--no-smooth", "--max-frames", "5").exit_code == 0
    result = cli("derain", src, "-o", out, "--no-smooth", "--skip-existing")
    assert result.exit_code == 0, result.output
    assert frames_in(out) == 12


def test_skip_existing_skips_a_complete_output_also_with_overwrite(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=6, audio=False)
    out = tmp_path / "out.mp4"
    assert cli("derain", src, "-o", out, "--no-smooth").exit_code == 0
    before = (out.stat().st_ino, out.stat().st_mtime_ns)
    result = cli("derain", src, "-o", out, "--no-smooth", "--skip-existing", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == before


# item 10: leftovers of killed runs, SIGHUP


def test_leftovers_of_killed_runs_are_removed(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=4, audio=False)
    dead = tmp_path / f".out.partial-{dead_pid()}.mp4"
    alive = tmp_path / f".out.partial-{os.getppid()}.mp4"  # a run still going: left alone
    other = tmp_path / f".other.partial-{dead_pid()}.mp4"  # another output's: left alone
    for p in (dead, alive, other):
        p.write_bytes(b"x" * 1000)
    assert cli("derain", src, "-o", tmp_path / "out.mp4", "--no-smooth").exit_code == 0
    assert not dead.exists() and alive.exists() and other.exists()


@pytest.mark.slow
def test_sighup_finishes_like_sigterm(make_clip, use_tiny_model, tmp_path):
    src = make_clip("long.mp4", frames=300, size=(320, 240), audio=False)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "stream_derain", "derain", str(src), "-o", str(out),
                             "--no-smooth", "--preset", "slow"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.stat().st_size > 20_000 for p in partials(tmp_path)):
        time.sleep(0.1)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert 0 < frames_in(out) < 300 and not partials(tmp_path)
