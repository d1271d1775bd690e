"""Live building blocks without a camera: backoff, segments, preview, push, errors."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest

from stream_derain.errors import ConfigError, InputError, OutputError
from stream_derain.io.video import FrameItem
from stream_derain.live import LiveConfig, PreviewServer, PushOutput, SegmentRecorder, SourceConfig, run_live
from stream_derain.live.outputs import CallbackOutput
from stream_derain.live.source import ReconnectingSource, backoff_delay

from streams import free_port


def frames(n: int, fps: float = 25.0, start: float = 1000.0) -> list[FrameItem]:
    rng = np.random.default_rng(1)
    return [FrameItem(i, None, None, rng.integers(0, 255, (48, 64, 3), np.uint8), captured=start + i / fps)
            for i in range(n)]


def decode_all(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(a, 0.5, 3.0) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_config_validation() -> None:
    with pytest.raises(InputError):
        SourceConfig("rtsp://127.0.0.1:1/x", transport="sctp")
    with pytest.raises(ConfigError):
        LiveConfig(SourceConfig("rtsp://127.0.0.1:1/x"), max_latency_s=0)
    assert SourceConfig("/dev/video0").format_name() == "v4l2"
    assert SourceConfig("rtsp://h/x", transport="udp").av_options() == {"rtsp_transport": "udp"}


def test_dead_camera_is_a_clear_error_after_the_retries() -> None:
    src = ReconnectingSource(SourceConfig(f"rtsp://127.0.0.1:{free_port()}/live", retries=3, backoff_s=0.05))
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"gave up after 3 attempt"):
        src.connect()
    assert src.stats.failed_attempts == 3 and time.monotonic() - t0 < 10


def test_run_live_needs_an_output() -> None:
    with pytest.raises(OutputError, match="no output"):
        run_live(LiveConfig(SourceConfig("rtsp://127.0.0.1:1/x")))


def test_segments_roll_over_and_each_file_plays(tmp_path: Path) -> None:
    rec = SegmentRecorder(tmp_path, segment_s=1.0, fps=25)
    for item in frames(60):  # 2.4 s of capture time -> 3 segments
        rec.write(item)
    rec.close()
    assert len(rec.files) == 3 and sorted(tmp_path.iterdir()) == sorted(rec.files)
    assert [decode_all(p) for p in rec.files] == [25, 25, 10]


def test_preview_serves_page_and_jpeg() -> None:
    preview = PreviewServer(0)
    try:
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :32] = (255, 0, 0)
        preview.write(FrameItem(0, None, None, img, captured=time.monotonic()))
        base = f"http://127.0.0.1:{preview.port}"
        page = urllib.request.urlopen(base + "/", timeout=5).read()
        assert b"/stream.mjpg" in page
        with urllib.request.urlopen(base + "/frame.jpg", timeout=5) as r:
            assert r.headers["Content-Type"] == "image/jpeg"
            body = r.read()
        assert body[:2] == b"\xff\xd8"
        with urllib.request.urlopen(base + "/stream.mjpg", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            head = r.read(200)
        assert b"--frame" in head and b"image/jpeg" in head
    finally:
        preview.close()


def test_push_rtsp_reaches_a_listening_server(tmp_path: Path, needs_ffmpeg: None) -> None:
    """ffmpeg in RTSP listen mode is the receiving server; it writes what we push."""
    port, out = free_port(), tmp_path / "pushed.mkv"
    proc = subprocess.Popen([shutil.which("ffmpeg"), "-hide_banner", "-loglevel", "error", "-timeout", "20",
                             "-rtsp_flags", "listen", "-i", f"rtsp://127.0.0.1:{port}/in",
                             "-c", "copy", str(out)],
                            stdin=subprocess.DEVNULL)
    try:
        push = PushOutput(f"rtsp://127.0.0.1:{port}/in", fps=25, retry_s=0.3)
        deadline = time.monotonic() + 15
        items = iter(frames(10_000, start=time.monotonic()))
        while push.encoder is None or push.encoder.frames < 50:
            assert time.monotonic() < deadline, "push never connected"
            push.write(next(items))
            time.sleep(0.005)
        push.close()
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert decode_all(out) >= 40


def test_callback_output_name() -> None:
    assert CallbackOutput(lambda item: None).name == "callback"


def test_cli_dead_camera_prints_one_error_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stream_derain.cli import app

    url = f"rtsp://127.0.0.1:{free_port()}/live"
    result = CliRunner().invoke(app, ["live", url, "--retries", "2", "--backoff", "0.05", "--record",
                                      str(tmp_path / "rec"), "--backend", "onnxruntime", "-q"])
    assert result.exit_code == 1
    assert "Error: cannot open" in result.output and "gave up after 2 attempt(s)" in result.output
    assert not (tmp_path / "rec").exists()  # nothing is created before the camera answers
