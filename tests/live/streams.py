"""Helpers for the live tests and the soak script: a generated clip and a real RTSP
server (gst-rtsp-server, run by the system Python: see ``rtsp_server.py``)."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"


def rtsp_server_available() -> tuple[bool, str]:
    """Can the system Python run gst-rtsp-server? (the capability probe for skips)"""
    if not Path(SYSTEM_PYTHON).exists():
        return False, f"{SYSTEM_PYTHON} not found"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert all(Gst.ElementFactory.find(e) for e in ('qtdemux', 'h264parse', 'rtph264pay'))")
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"probe failed: {exc}"
    if r.returncode != 0:
        return False, ("gst-rtsp-server not usable (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                       "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
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
    """``rtsp://127.0.0.1:PORT/live`` serving ``clip``; ``start``/``stop`` may repeat."""

    def __init__(self, clip: Path, port: int | None = None) -> None:
        self.clip, self.port = clip, port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self, timeout: float = 20.0) -> RtspServer:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(HERE / "rtsp_server.py"), "--port", str(self.port),
                                      "--clip", str(self.clip)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": ""})
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

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
