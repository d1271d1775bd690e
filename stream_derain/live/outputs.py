"""Where derained live frames go: an RTSP/RTMP push, an MJPEG preview, MP4 segments.

Every output takes :class:`~stream_derain.io.video.FrameItem`\\ s through ``write``
and is finalised by ``close`` (safe to call twice). Encoded outputs time-stamp
frames from their capture time (milliseconds), so drops and reconnects give a
correct variable frame rate and timestamps never go backwards.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np

from ..errors import OutputError
from ..io.encode_options import EncodeOptions
from ..io.encoder import VideoEncoder
from ..io.video import FrameItem

log = logging.getLogger(__name__)
MS = 1000  # encoded outputs use a 1/1000 s time base
# fragmented MP4, each fragment written through to the disk at once: after a crash
# of the process (SIGKILL, OOM kill) a segment still plays up to its last keyframe
LIVE_ENCODE = EncodeOptions(codec="libx264", crf=23, preset="veryfast")
FRAG_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


class Output(Protocol):
    """What the output stage drives."""

    name: str

    def write(self, item: FrameItem) -> None: ...

    def close(self) -> None: ...


class LiveEncoder:
    """One encoder (default: H.264, libx264 veryfast, zerolatency, no B-frames, a keyframe
    every 2 s) muxing into one container; the encoding is :class:`~..io.encoder.VideoEncoder`'s,
    as the file writer's."""

    def __init__(self, target: str, fmt: str | None, options: dict[str, str], width: int, height: int,
                 fps: int = 25, encode: EncodeOptions = LIVE_ENCODE) -> None:
        self.target = target
        try:
            self.container = av.open(target, "w", format=fmt, options=options, timeout=(10.0, 10.0))
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot open output {target}: {_why(exc)}") from None
        try:
            self.encoder = VideoEncoder(self.container, encode, width, height, rate=fps,
                                        time_base=Fraction(1, MS), even=True, low_latency=True,
                                        gop=2 * fps, name=target)
        except BaseException:
            self.container.close()
            raise
        self.stream = self.encoder.stream
        self._last_pts = -1
        self._t0: float | None = None

    @property
    def frames(self) -> int:
        return self.encoder.frames

    def encode(self, item: FrameItem) -> None:
        if self._t0 is None:
            self._t0 = item.captured
        pts = max(int(round((item.captured - self._t0) * MS)), self._last_pts + 1)
        self._last_pts = pts
        self._mux(self.encoder.encode(item.image, pts, Fraction(1, MS)))

    def _mux(self, packets: Any) -> None:
        try:
            for packet in packets:
                self.container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self.target}: {_why(exc)}") from None

    def close(self) -> None:
        container, self.container = self.container, None
        if container is None:
            return
        try:
            for packet in self.encoder.flush():
                container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            log.warning("flushing %s: %s", self.target, exc)
        finally:
            try:
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                log.warning("closing %s: %s", self.target, exc)


class PushOutput:
    """Publishes to an RTSP (``rtsp://``, TCP) or RTMP (``rtmp://``, FLV) server.
    A failed push is logged and retried (at a keyframe boundary) after ``retry_s``."""

    def __init__(self, url: str, fps: int = 25, retry_s: float = 5.0,
                 encode: EncodeOptions = LIVE_ENCODE) -> None:
        self.encode = encode
        if url.startswith(("rtsp://", "rtsps://")):
            self.fmt, self.options = "rtsp", {"rtsp_transport": "tcp"}
        elif url.startswith(("rtmp://", "rtmps://")):
            self.fmt, self.options = "flv", {}
        else:
            raise OutputError(f"--push needs an rtsp:// or rtmp:// URL, got {url}")
        self.name, self.url, self.fps, self.retry_s = f"push {url}", url, fps, retry_s
        self.encoder: LiveEncoder | None = None
        self.failures = 0
        self._retry_at = 0.0

    def write(self, item: FrameItem) -> None:
        if self.encoder is None:
            if time.monotonic() < self._retry_at:
                return
            try:
                h, w = item.image.shape[:2]
                self.encoder = LiveEncoder(self.url, self.fmt, dict(self.options), w, h, self.fps,
                                           self.encode)
                log.info("pushing to %s", self.url)
            except OutputError as exc:
                self._failed(exc)
                return
        try:
            self.encoder.encode(item)
        except OutputError as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.warning("push to %s failed (#%d): %s; retrying in %.0fs", self.url, self.failures, exc,
                    self.retry_s)
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None
        self._retry_at = time.monotonic() + self.retry_s

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None


class SegmentRecorder:
    """Fragmented MP4 files in ``folder``, a new one every ``segment_s`` seconds of capture
    time; each file starts with a keyframe and is finalised when the next one starts."""

    def __init__(self, folder: Path, segment_s: float, fps: int = 25, prefix: str = "live",
                 encode: EncodeOptions = LIVE_ENCODE) -> None:
        self.encode = encode
        if segment_s <= 0:
            raise OutputError(f"segment length must be > 0, got {segment_s}s")
        folder.mkdir(parents=True, exist_ok=True)
        self.name, self.folder, self.segment_s = f"record {folder}", folder, segment_s
        self.fps, self.prefix = fps, prefix
        self.encoder: LiveEncoder | None = None
        self.files: list[Path] = []
        self._started = 0.0

    def _new_path(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return self.folder / f"{self.prefix}-{stamp}-{len(self.files):04d}.mp4"

    def write(self, item: FrameItem) -> None:
        if self.encoder is not None and item.captured - self._started >= self.segment_s:
            self._finish()
        if self.encoder is None:
            path = self._new_path()
            h, w = item.image.shape[:2]
            self.encoder = LiveEncoder(str(path), "mp4", dict(FRAG_MP4), w, h, self.fps, self.encode)
            self.files.append(path)
            self._started = item.captured
            log.info("recording segment %d: %s", len(self.files), path)
        self.encoder.encode(item)

    def _finish(self) -> None:
        encoder, self.encoder = self.encoder, None
        if encoder is not None:
            encoder.close()
            log.info("finalised %s (%d frames)", encoder.target, encoder.frames)

    def close(self) -> None:
        self._finish()


PAGE = b"""<!doctype html><html><head><title>stream-derain live</title></head>
<body style="margin:0;background:#111;color:#ccc;font-family:sans-serif">
<p style="margin:4px">stream-derain: derained live view
<span id="stats" style="font-family:monospace;margin-left:1em">waiting for the first status ...</span></p>
<img src="/stream.mjpg" style="max-width:100%" alt="live view">
<script>
async function poll() {
  try {
    const s = await (await fetch("/stats.json", {cache: "no-store"})).json();
    if (s.seconds !== undefined) {
      document.getElementById("stats").textContent =
        `in ${s.fps_in.toFixed(1)} fps, out ${s.fps_out.toFixed(1)} fps, ` +
        `latency ${Math.round(s.latency_s * 1000)} ms (p95 ${Math.round(s.latency_p95_s * 1000)}), ` +
        `dropped ${s.dropped}, reconnects ${s.reconnects}, ` +
        `${s.connected ? "connected" : "RECONNECTING"}, ${s.backend}`;
    }
  } catch (e) {
    document.getElementById("stats").textContent = "run ended";
  }
  setTimeout(poll, 1000);
}
poll();
</script></body></html>"""


class _Latest:
    """The newest frame, with a sequence number that handlers wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.image: np.ndarray | None = None
        self.seq = 0
        self.closed = False
        self.stats = b"{}"  # the run's latest status (JSON), as the terminal's status line

    def put(self, image: np.ndarray) -> None:
        with self.cond:
            self.image, self.seq = image, self.seq + 1
            self.cond.notify_all()

    def wait_newer(self, seq: int, timeout: float) -> tuple[np.ndarray | None, int]:
        with self.cond:
            self.cond.wait_for(lambda: self.seq > seq or self.closed, timeout)
            return self.image, self.seq


def jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OutputError("JPEG encoding failed")
    return buf.tobytes()


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def _handler(latest: _Latest) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("preview: " + fmt, *args)

        def _send(self, ctype: str, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path in ("/", "/index.html"):
                return self._send("text/html; charset=utf-8", PAGE)
            if self.path.startswith("/frame.jpg"):
                image, _ = latest.wait_newer(0, 5.0)
                if image is None:
                    return self.send_error(503, "no frame yet")
                return self._send("image/jpeg", jpeg(image))
            if self.path.startswith("/stats.json"):
                return self._send("application/json", latest.stats)
            if self.path.startswith("/stream.mjpg"):
                return self._stream()
            self.send_error(404)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seq = 0
            try:
                while not latest.closed:
                    image, new = latest.wait_newer(seq, 1.0)
                    if image is None or new == seq:
                        continue
                    seq, body = new, jpeg(image)
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: %d\r\n\r\n%s\r\n" % (len(body), body))
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


class PreviewServer:
    """MJPEG over HTTP on 127.0.0.1: ``/`` (a page: the video and the run's status line),
    ``/stream.mjpg``, ``/frame.jpg``, ``/stats.json`` (the latest :meth:`publish`ed
    status). JPEGs are encoded by the client's handler thread, only while someone watches."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.latest = _Latest()
        try:
            self.httpd = ThreadingHTTPServer((host, port), _handler(self.latest))
        except OSError as exc:
            raise OutputError(f"cannot serve the preview on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.name = f"preview http://{host}:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="stream-derain-preview", daemon=True)
        self.thread.start()
        log.info("preview: http://%s:%d/", host, self.port)

    def write(self, item: FrameItem) -> None:
        self.latest.put(item.image)

    def publish(self, stats: dict[str, Any]) -> None:
        """The run's status for the page (fps, latency, drops, connection, backend)."""
        self.latest.stats = json.dumps(stats, default=str).encode()

    def close(self) -> None:
        if self.latest.closed:
            return
        with self.latest.cond:
            self.latest.closed = True
            self.latest.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5.0)


class CallbackOutput:
    """Hands every frame to a function (library users, tests)."""

    def __init__(self, fn: Callable[[FrameItem], None], name: str = "callback") -> None:
        self.fn, self.name = fn, name

    def write(self, item: FrameItem) -> None:
        self.fn(item)

    def close(self) -> None:
        pass
