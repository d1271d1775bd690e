"""Issue 13, point 7: Ctrl-C / SIGTERM while connecting ends ``live`` at once (130).

PyAV turns a signal inside ``av.open`` into ExitError ("Immediate exit requested"),
which looked like a failed attempt: every retry ran out first."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_connecting_exits_130(use_tiny_model, sig):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts the TCP handshake, never answers: av.open waits for its timeout
    port = server.getsockname()[1]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream_derain", "live", f"rtsp://127.0.0.1:{port}/x", "--retries", "5",
             "--open-timeout", "4", "--backoff", "0.2", "--preview-port", "0", "--backend", "onnxruntime",
             "--no-smooth"], stderr=subprocess.PIPE, text=True, env={**os.environ})
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(" on onnxruntime (" in ln for ln in lines):
            time.sleep(0.05)
        time.sleep(1.0)  # inside the first av.open
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=20)
        reader.join(timeout=5)
    finally:
        server.close()
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 5, err
    assert "Traceback" not in err and "attempt 2" not in err
