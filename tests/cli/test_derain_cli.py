"""Bad input and interruption, through the real command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from stream_derain.cli import app

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for w in words:
        assert w in lines[0], lines[0]


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".partial-" in p.name]


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_derains_a_clip(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=6)
    result = cli("derain", src, "-o", tmp_path / "out.mp4", "--no-smooth", "-q")
    assert result.exit_code == 0, result.output
    assert frames_in(tmp_path / "out.mp4") == 6


def test_missing_input(use_tiny_model, tmp_path):
    one_line_error(cli("derain", tmp_path / "nope.mp4"), "not found")


def test_garbage_file(use_tiny_model, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(4096))
    one_line_error(cli("derain", bad, "-o", tmp_path / "o.mp4"), "bad.mp4")


def test_truncated_mp4(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    one_line_error(cli("derain", cut, "-o", tmp_path / "o.mp4"), "cut.mp4")


def test_no_video_stream(use_tiny_model, tmp_path):
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        import numpy as np

        for k in range(10):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, k * 1024
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    one_line_error(cli("derain", path, "-o", tmp_path / "o.mp4"), "no video stream")


def test_existing_output_needs_overwrite(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=3)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    one_line_error(cli("derain", src, "-o", out), "--overwrite")
    assert out.read_bytes() == b"keep me"
    assert cli("derain", src, "-o", out, "--overwrite", "--no-smooth", "-q").exit_code == 0


def test_unwritable_output(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=3)
    one_line_error(cli("derain", src, "-o", tmp_path / "no" / "such" / "dir.mp4"), "does not exist")


def test_image_and_folder(use_tiny_model, tmp_path):
    import cv2
    import numpy as np

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, shape in enumerate([(41, 57, 3), (41, 57, 3), (64, 48, 3)]):
        cv2.imwrite(str(folder / f"{i}.png"), np.random.default_rng(i).integers(0, 255, shape, np.uint8))
    assert cli("derain", folder / "2.png", "-o", tmp_path / "one.png").exit_code == 0
    assert cv2.imread(str(tmp_path / "one.png")).shape == (64, 48, 3)
    result = cli("derain", folder, "-o", tmp_path / "out", "--batch", "2")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]


def test_corrupt_packet_is_skipped(make_clip, use_tiny_model, tmp_path):
    """Damage the middle of an MJPEG stream: the run finishes with a warning."""
    src = make_clip("in.avi", frames=20, codec="mjpeg", pix_fmt="yuvj420p", audio=False)
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 600] = os.urandom(600)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(data))
    result = cli("derain", bad, "-o", tmp_path / "out.mp4", "--no-smooth")
    assert result.exit_code == 0, result.output
    assert 15 <= frames_in(tmp_path / "out.mp4") <= 20


def _can_mount_tmpfs(path: Path) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk(make_clip, use_tiny_model, tmp_path):
    small = tmp_path / "small"
    if not _can_mount_tmpfs(small):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        src = make_clip("in.mp4", frames=60, size=(320, 240), audio=False)
        result = cli("derain", src, "-o", small / "out.mkv", "--no-smooth", "--crf", "0")
        one_line_error(result, "disk full")
    finally:
        subprocess.run(["umount", str(small)], check=False)


@pytest.mark.slow
def test_sigterm_leaves_a_playable_file(make_clip, use_tiny_model, tmp_path):
    src = make_clip("long.mp4", frames=400, size=(320, 240), audio=True)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "stream_derain", "derain", str(src), "-o", str(out),
                             "--no-smooth", "--preset", "slow"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.stat().st_size > 20_000 for p in partials(tmp_path)):
        time.sleep(0.1)
    assert not out.exists()  # written under a temporary name until done
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted" in err
    n = frames_in(out)
    assert 0 < n < 400
    assert not partials(tmp_path)
