"""Helpers for the live tests and the soak script: a generated clip and a real RTSP
server on 127.0.0.1 (ffmpeg streaming the clip in a loop, see ``rtsp_server.py``)."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent


def rtsp_server_available() -> tuple[bool, str]:
    """Can the test RTSP server run? (the capability probe for skips: it needs ffmpeg)"""
    if shutil.which("ffmpeg") is None:
        return False, "ffmpeg is not on PATH (scripts/test.sh installs it when run as root)"
    return True, ""


def make_clip(path: Path, seconds: float = 10.0, fps: int = 25, size: tuple[int, int] = (320, 240)) -> Path:
    """A small H.264 MP4 (keyframe every ``fps`` frames, no B-frames): a moving scene
    with bright diagonal 'rain' streaks."""
    w, h = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = fps
        s.codec_context.options = {"preset": "ultrafast", "bf": "0", "keyint_min": str(fps)}
        for i in range(int(seconds * fps)):
            img = np.empty((h, w, 3), np.uint8)
            img[..., 0] = (xx + 2 * i) % 256
            img[..., 1] = (yy + i) % 256
            img[..., 2] = 90
            x0 = (i * 4) % (w - 40)
            img[80:160, x0:x0 + 40] = (200, 60, 40)
            for _ in range(40):  # rain streaks
                x, y = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 16))
                for k in range(12):
                    img[y + k, x + k // 2] = 235
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """``rtsp://127.0.0.1:PORT/live`` streaming ``clip`` in a loop; ``start``/``stop`` may
    repeat (same port). The server and its ffmpeg run in their own process group, which
    ``stop`` kills and ``pause``/``resume`` freeze and thaw (a stalled camera)."""

    def __init__(self, clip: Path, port: int | None = None, lifetime_s: float = 900.0) -> None:
        self.clip, self.port, self.lifetime_s = clip, port or free_port(), lifetime_s
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self, timeout: float = 20.0) -> RtspServer:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "rtsp_server.py"), "--port", str(self.port),
                                      "--clip", str(self.clip), "--lifetime", str(self.lifetime_s)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True, env={**os.environ, "PYTHONPATH": ""})
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if b"READY" in line:
                    return self
                if not line:
                    break
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"RTSP server did not start on port {self.port}")

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self._signal_group(signal.SIGCONT)
        self._signal_group(signal.SIGKILL)
        proc, self.proc = self.proc, None
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
