"""A real RTSP server on 127.0.0.1 for the live tests and the soak run; ffmpeg does the media.

    python rtsp_server.py --port 8554 --clip clip.mp4 [--lifetime 900]

ffmpeg reads the clip in real time in a loop (``-re -stream_loop -1``), copies its H.264
into RTP without re-encoding (SPS/PPS travel in the SDP) and sends it to two
UDP sockets of this process. This process answers RTSP on ``rtsp://127.0.0.1:PORT/live``
(OPTIONS, DESCRIBE with ffmpeg's SDP, SETUP, PLAY, GET_PARAMETER, TEARDOWN) and relays
the packets to every playing client, interleaved over TCP or as UDP. Like a camera,
every client joins the one live stream. Only the standard library is needed (and
ffmpeg on PATH); prints ``READY`` once listening and exits on SIGTERM / SIGINT, when
ffmpeg dies, or after ``--lifetime`` seconds (so a forgotten server never lingers).
Run it in its own process group and kill the group to take ffmpeg down with it.
"""

from __future__ import annotations

import argparse
import itertools
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"


def udp_socket(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    s.bind((HOST, port))
    return s


def start_ffmpeg(clip: Path, rtp_port: int, rtcp_port: int, sdp: Path) -> subprocess.Popen:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is not on PATH")
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1",
           "-i", str(clip), "-map", "0:v:0", "-c", "copy",
           "-sdp_file", str(sdp), "-f", "rtp", "-payload_type", "96",
           f"rtp://{HOST}:{rtp_port}?rtcpport={rtcp_port}&pkt_size=1200"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)


def session_sdp(ffmpeg_sdp: str) -> str:
    """ffmpeg's SDP made fit for DESCRIBE: any port, one control URL per stream."""
    media = ffmpeg_sdp[ffmpeg_sdp.index("m=video"):].strip().splitlines()
    parts = media[0].split()
    media[0] = " ".join([parts[0], "0", *parts[2:]])
    head = ["v=0", f"o=- 0 0 IN IP4 {HOST}", "s=stream-derain test stream", "c=IN IP4 0.0.0.0", "t=0 0",
            "a=control:*"]
    return "\r\n".join(head + media + ["a=control:streamid=0", ""])


class Client:
    """One RTSP connection: answers requests; the relay sends it media once it plays."""

    _ids = itertools.count(0x1234567)

    def __init__(self, server: Server, conn: socket.socket) -> None:
        self.server, self.conn = server, conn
        self.lock = threading.Lock()  # responses and media share the socket
        self.session = str(next(self._ids))
        self.tcp_channels: tuple[int, int] | None = None
        self.udp_ports: tuple[int, int] | None = None
        self.playing = False
        self.alive = True
        conn.settimeout(5.0)  # a client that stops reading is dropped, not waited for

    def send(self, data: bytes) -> None:
        with self.lock:
            self.conn.sendall(data)

    def respond(self, cseq: str, headers: dict[str, str] | None = None, body: bytes = b"",
                status: str = "200 OK") -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", "Server: stream-derain-test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def media(self, channel: int, packet: bytes) -> None:
        """Channel 0: RTP, 1: RTCP."""
        if self.tcp_channels is not None:
            ch = self.tcp_channels[channel]
            self.send(b"$" + bytes([ch]) + len(packet).to_bytes(2, "big") + packet)
        elif self.udp_ports is not None:
            self.server.udp_out[channel].sendto(packet, (HOST, self.udp_ports[channel]))

    def close(self) -> None:
        self.alive = self.playing = False
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()

    # --- requests -----------------------------------------------------------
    def serve(self) -> None:
        buf = b""
        try:
            while self.alive:
                try:
                    data = self.conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                buf += data
                buf = self._consume(buf)
        except OSError:
            pass
        finally:
            self.server.forget(self)

    def _consume(self, buf: bytes) -> bytes:
        while buf:
            if buf[:1] == b"$":  # the client's interleaved RTCP receiver reports
                if len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[2:4], "big"):
                    return buf
                buf = buf[4 + int.from_bytes(buf[2:4], "big"):]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return buf
            head = buf[:end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
            length = int(headers.get("content-length", "0"))
            if len(buf) < end + 4 + length:
                return buf
            buf = buf[end + 4 + length:]
            self._request(head[0].split(), headers)
        return buf

    def _request(self, line: list[str], headers: dict[str, str]) -> None:
        method, url = (line + ["", ""])[:2]
        cseq = headers.get("cseq", "0")
        session = {"Session": f"{self.session};timeout=60"}
        if method == "OPTIONS":
            self.respond(cseq, {"Public": PUBLIC})
        elif method == "DESCRIBE":
            if not url.rstrip("/").endswith(self.server.path):
                return self.respond(cseq, status="404 Not Found")
            base = f"rtsp://{HOST}:{self.server.port}{self.server.path}/"
            self.respond(cseq, {"Content-Base": base, "Content-Type": "application/sdp"},
                         self.server.sdp.encode())
        elif method == "SETUP":
            self.respond(cseq, {**session, "Transport": self._transport(headers.get("transport", ""))})
        elif method == "PLAY":
            self.respond(cseq, {**session, "Range": "npt=0.000-"})
            self.playing = True
        elif method in ("GET_PARAMETER", "SET_PARAMETER"):
            self.respond(cseq, session)
        elif method == "TEARDOWN":
            self.respond(cseq, session)
            self.alive = False
        else:
            self.respond(cseq, status="501 Not Implemented")

    def _transport(self, spec: str) -> str:
        fields = dict(f.partition("=")[::2] for f in spec.split(";"))
        if "TCP" in spec.split(";")[0]:
            a, _, b = (fields.get("interleaved") or "0-1").partition("-")
            self.tcp_channels = (int(a), int(b or int(a) + 1))
            return f"RTP/AVP/TCP;unicast;interleaved={self.tcp_channels[0]}-{self.tcp_channels[1]}"
        a, _, b = fields.get("client_port", "").partition("-")
        self.udp_ports = (int(a), int(b or int(a) + 1))
        rtp, rtcp = (s.getsockname()[1] for s in self.server.udp_out)
        return f"RTP/AVP;unicast;client_port={a}-{self.udp_ports[1]};server_port={rtp}-{rtcp}"


class Server:
    def __init__(self, port: int, path: str, sdp: str) -> None:
        self.port, self.path, self.sdp = port, path, sdp
        self.clients: list[Client] = []
        self.lock = threading.Lock()
        self.udp_out = (udp_socket(), udp_socket())
        self.listener = socket.create_server((HOST, port))  # SO_REUSEADDR: a restart may reuse the port

    def accept_forever(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            client = Client(self, conn)
            with self.lock:
                self.clients.append(client)
            threading.Thread(target=client.serve, daemon=True).start()

    def forget(self, client: Client) -> None:
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)
        client.close()

    def relay(self, rtp: socket.socket, rtcp: socket.socket, stop: threading.Event) -> None:
        inputs = [rtp, rtcp, *self.udp_out]
        while not stop.is_set():
            ready, _, _ = select.select(inputs, [], [], 0.2)
            for sock in ready:
                packet = sock.recv(65536)
                if sock not in (rtp, rtcp):
                    continue  # a UDP client's reports / hole punching
                with self.lock:
                    playing = [c for c in self.clients if c.playing]
                for client in playing:
                    try:
                        client.media(0 if sock is rtp else 1, packet)
                    except OSError:
                        self.forget(client)


def wait_for_sdp(path: Path, ffmpeg: subprocess.Popen, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and ffmpeg.poll() is None:
        text = path.read_text() if path.exists() else ""
        if "m=video" in text and "fmtp" in text:
            return text
        time.sleep(0.05)
    raise SystemExit("ffmpeg did not start streaming")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clip", type=Path, required=True, help="a video file with an H.264 stream")
    ap.add_argument("--path", default="/live")
    ap.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds")
    args = ap.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rtp, rtcp = udp_socket(), udp_socket()
    with tempfile.TemporaryDirectory(prefix="rtsp-server-") as tmp:
        ffmpeg = start_ffmpeg(args.clip, rtp.getsockname()[1], rtcp.getsockname()[1], Path(tmp) / "s.sdp")
        try:
            server = Server(args.port, args.path, session_sdp(wait_for_sdp(Path(tmp) / "s.sdp", ffmpeg)))
            threading.Thread(target=server.accept_forever, daemon=True).start()
            threading.Thread(target=server.relay, args=(rtp, rtcp, stop), daemon=True).start()
            print("READY", flush=True)
            deadline = time.monotonic() + args.lifetime
            while not stop.wait(0.2) and ffmpeg.poll() is None and time.monotonic() < deadline:
                pass
            return 0 if stop.is_set() or ffmpeg.poll() is None else 1
        finally:
            ffmpeg.kill()
            ffmpeg.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
