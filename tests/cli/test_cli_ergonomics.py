"""Issue 13, points 16-17: what a user of ffmpeg expects from the command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import av
import pytest
from test_derain_cli import cli

from stream_derain import __version__


def test_version_and_short_help():
    assert cli("--version").output.splitlines()[0] == f"stream-derain {__version__}"
    assert "Usage" in cli("-h").output and "--skip-existing" in cli("derain", "-h").output


@pytest.mark.parametrize("command", ["derain", "live", "bench", "eval", "build-engine"])
def test_help_shows_no_python_types(command):
    text = cli(command, "--help").output
    assert "<bool>" not in text and "list[" not in text and "<str>" not in text, text


@pytest.mark.parametrize("command", ["derain", "live", "bench", "eval", "quantize", "export"])
def test_help_fits_80_columns(command):
    """Issue 28: every entry readable on an 80-column terminal (rich cuts an entry that
    does not fit its column with an ellipsis)."""
    run = subprocess.run([sys.executable, "-m", "stream_derain", command, "-h"], capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "80", "TERM": "xterm"}, check=True)
    lines = run.stdout.splitlines()
    assert "…" not in run.stdout, [ln for ln in lines if "…" in ln]
    assert max(len(ln) for ln in lines) <= 80


def test_help_names_the_default_output():
    assert "INPUT.derained.mp4" in " ".join(cli("derain", "--help").output.split())


def test_time_window_in_seconds(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=20, audio=True)  # 40 ms frames
    out = tmp_path / "out.mp4"
    result = cli("derain", src, "-o", out, "--ss", "0.2", "-t", "0.2", "--no-smooth")
    assert result.exit_code == 0, result.output
    with av.open(str(src)) as c:
        pts = [f.pts for f in c.decode(video=0)]
    with av.open(str(out)) as c:  # the clock restarts at --ss, as ffmpeg's -ss (issue 30, item 4)
        assert [f.pts for f in c.decode(video=0)] == [p - pts[5] for p in pts[5:10]]
    with av.open(str(out)) as c:
        audio = [p.pts * p.time_base for p in c.demux(audio=0) if p.pts is not None]
        assert audio and -0.07 < float(min(audio)) < 0.07


def test_bitrate(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=6, audio=False)
    result = cli("derain", src, "-o", tmp_path / "o.mp4", "--bitrate", "300k", "--no-smooth")
    assert result.exit_code == 0, result.output


def test_encoder_logging_is_silent_without_verbose(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=4, audio=False)
    run = subprocess.run([sys.executable, "-m", "stream_derain", "derain", str(src), "-o",
                          str(tmp_path / "o.mp4"), "--codec", "libx265", "--no-smooth"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "x265 [info]" not in run.stderr and "[info]" not in run.stderr


def test_no_help_text_loses_a_bracket_to_rich_markup():
    """rich reads ``[words]`` in a help text as markup and drops it ("Model to ship ." was
    "Model to ship [default: ...]."); a literal bracket is written ``\\[``."""
    import click
    import typer.main

    from stream_derain.cli import app

    def walk(cmd: click.Command):  # noqa: ANN202
        yield cmd
        for sub in getattr(cmd, "commands", {}).values():
            yield from walk(sub)

    bad = [(cmd.name, p.name, p.help) for cmd in walk(typer.main.get_command(app))
           for p in cmd.params if re.search(r"(?<!\\)\[[a-z]", getattr(p, "help", None) or "")]
    assert not bad, bad
