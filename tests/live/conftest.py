"""Fixtures for the live tests: a generated clip and a real RTSP server on 127.0.0.1."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streams import RtspServer, make_clip, rtsp_server_available  # noqa: E402

_SERVER = rtsp_server_available()


@pytest.fixture(scope="session")
def live_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """320x240, 25 fps, 12 s, keyframe every 25 frames."""
    return make_clip(tmp_path_factory.mktemp("live") / "clip.mp4", seconds=12.0)


@pytest.fixture
def rtsp_server(live_clip: Path) -> Iterator[RtspServer]:
    """A running server (stopped, whatever happens, at the end of the test)."""
    if not _SERVER[0]:
        pytest.skip(_SERVER[1])
    server = RtspServer(live_clip)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def needs_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not on PATH")


@pytest.fixture(autouse=True)
def _live_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stream_derain")
