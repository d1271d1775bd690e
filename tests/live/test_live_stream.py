"""Live runs against a real RTSP server on 127.0.0.1 (ffmpeg streaming a clip, see rtsp_server.py)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from streams import RtspServer, free_port

from stream_derain import stages
from stream_derain.backends import create_backend
from stream_derain.catalog import resolve_model
from stream_derain.engine_spec import EngineSpec
from stream_derain.io.video import FrameItem
from stream_derain.live import (
    CallbackOutput,
    LiveConfig,
    LiveStats,
    ReconnectingSource,
    SourceConfig,
    run_live,
)
from stream_derain.stages import make_smoother

BACKEND = "onnxruntime"
SINGLE = "derain-student-v3"  # the shipped single-frame model

ENGINE_KEYS = {f.name for f in dataclasses.fields(EngineSpec)}


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


class LiveRun:
    """run_live in a thread, with the latest status and the frames that came out."""

    def __init__(self, cfg: LiveConfig) -> None:
        self.cfg, self.stop = cfg, threading.Event()
        self.frames: list[FrameItem] = []
        self.status: LiveStats | None = None
        self.result: LiveStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = run_live(self.cfg, status_cb=self._status, stop_event=self.stop,
                                   extra_outputs=[CallbackOutput(self.frames.append)])
        except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
            self.error = exc

    def _status(self, stats: LiveStats) -> None:
        self.status = stats

    def __enter__(self) -> LiveRun:
        self.thread.start()
        return self

    def finish(self, timeout: float = 20.0) -> LiveStats:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run_live did not stop"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20.0)


def config(url: str, **kw: object) -> LiveConfig:
    keys = ("read_timeout_s", "open_timeout_s", "backoff_s", "retries")
    src = {k: kw.pop(k) for k in list(kw) if k in keys}
    source = SourceConfig(url, **{"read_timeout_s": 3.0, "open_timeout_s": 3.0, "backoff_s": 0.2, **src})
    kw.setdefault("model", SINGLE)  # these tests check the run, not the window (test_live_units does)
    engine = EngineSpec(backend=BACKEND, threads=1, **{k: kw.pop(k) for k in list(kw) if k in ENGINE_KEYS})
    return LiveConfig(source=source, engine=engine, status_every_s=0.2, **kw)


def test_frames_arrive_derained_to_several_outputs(rtsp_server: RtspServer, tmp_path: Path) -> None:
    """Preview, recording and a callback at once; the frames are the backend's output."""
    port, rec = free_port(), tmp_path / "rec"
    cfg = config(rtsp_server.url, smooth=False, preview_port=port, record_dir=rec, max_seconds=30)
    with LiveRun(cfg) as run:
        wait_for(lambda: len(run.frames) >= 10, 20, "10 derained frames")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/frame.jpg", timeout=5) as r:
            jpeg = r.read()
        stats = run.finish()
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) > 1000
    assert stats.frames_out >= 10 and stats.backend.startswith("onnxruntime")
    assert len(stats.outputs) == 3 and len(stats.segments) == 1
    with av.open(str(stats.segments[0])) as c:
        assert sum(1 for _ in c.decode(video=0)) == stats.frames_out
    with create_backend(BACKEND, resolve_model(SINGLE), threads=1) as backend:
        for item in run.frames[:5]:
            assert item.image.shape == item.rainy.shape == (240, 320, 3)
            direct = backend.infer(item.rainy[None])[0]
            assert np.abs(direct.astype(int) - item.image).max() <= 1  # the backend's output
            # and not the input: the streaks (~0.6% of the pixels) are taken out
            assert (np.abs(item.image.astype(int) - item.rainy) > 20).mean() > 0.002


def first_frames(src: ReconnectingSource, n: int, timeout: float) -> list[FrameItem]:
    """Up to ``n`` frames from ``src``, within ``timeout`` seconds (a timer ends the source)."""
    timer = threading.Timer(timeout, src.end.set)
    timer.start()
    got: list[FrameItem] = []
    try:
        for item in src.frames():
            got.append(item)
            if len(got) >= n:
                src.end.set()
    finally:
        timer.cancel()
    return got


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_source_reads_both_rtsp_transports(rtsp_server: RtspServer, transport: str) -> None:
    src = ReconnectingSource(SourceConfig(rtsp_server.url, transport=transport, open_timeout_s=5,
                                          read_timeout_s=5))
    got = first_frames(src, 10, timeout=20)
    assert len(got) >= 10 and got[0].image.shape == (240, 320, 3)
    assert src.stats.drops == 0 and src.container is None  # closed


def test_source_reads_http(live_clip: Path, needs_ffmpeg: None) -> None:
    """An HTTP stream (ffmpeg serving MPEG-TS in listen mode on 127.0.0.1)."""
    url = f"http://127.0.0.1:{free_port()}/cam.ts"
    proc = subprocess.Popen([shutil.which("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                             "-i", str(live_clip), "-c", "copy", "-f", "mpegts", "-listen", "1", url])
    try:
        src = ReconnectingSource(SourceConfig(url, open_timeout_s=5, read_timeout_s=5, retries=20,
                                              backoff_s=0.1, backoff_max_s=0.2))
        got = first_frames(src, 10, timeout=20)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert len(got) >= 10 and got[0].image.shape == (240, 320, 3)


@pytest.mark.slow
def test_server_restart_reconnects_and_frames_flow_again(rtsp_server: RtspServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    resets: list[float] = []

    def spy_smoother(strength: float) -> object:  # counts the resets a reconnect causes
        smoother = make_smoother(strength)
        reset = smoother.reset
        smoother.reset = lambda: (resets.append(time.monotonic()), reset())[1]
        return smoother

    monkeypatch.setattr(stages, "make_smoother", spy_smoother)  # what the live pipeline builds
    with LiveRun(config(rtsp_server.url, max_seconds=60)) as run:
        wait_for(lambda: len(run.frames) >= 10, 20, "first frames")
        rtsp_server.stop()
        wait_for(lambda: run.status is not None and run.status.stream_drops >= 1, 15, "the drop")
        n = len(run.frames)
        assert not resets
        rtsp_server.start()
        wait_for(lambda: len(run.frames) >= n + 10, 30, "frames after the restart")
        wait_for(lambda: run.status is not None and run.status.reconnects >= 1, 5, "the status line")
        line = run.status.line()
        stats = run.finish()
    assert stats.reconnects >= 1 and stats.stream_drops >= 1
    assert "reconnects 1" in line or "reconnects 2" in line, line
    assert any(item.discontinuity for item in run.frames[n:])
    assert 1 <= len(resets) <= stats.reconnects  # the smoother starts afresh after a reconnect


@pytest.mark.slow
def test_slow_backend_drops_frames_to_bound_latency(rtsp_server: RtspServer) -> None:
    bound = 0.8
    with LiveRun(config(rtsp_server.url, smooth=False, infer_delay_s=0.25, max_latency_s=bound,
                        max_seconds=30)) as run:
        wait_for(lambda: len(run.frames) >= 12, 25, "frames from the slow backend")
        stats = run.finish()
    assert stats.dropped > 0 and stats.frames_in > stats.frames_out
    assert f"dropped {stats.dropped}" in stats.line()
    assert stats.latency_p95_s < bound + 0.2, stats


@pytest.mark.slow
def test_stalled_server_hits_the_read_timeout(rtsp_server: RtspServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with LiveRun(config(rtsp_server.url, read_timeout_s=1.0, open_timeout_s=1.5, max_seconds=60)) as run:
        wait_for(lambda: len(run.frames) >= 5, 20, "first frames")
        rtsp_server.pause()
        try:
            wait_for(lambda: run.status is not None and run.status.stream_drops >= 1, 15, "the stall")
        finally:
            rtsp_server.resume()
        n = len(run.frames)
        wait_for(lambda: len(run.frames) >= n + 5, 30, "frames after the stall")
        stats = run.finish()
    assert stats.reconnects >= 1
    assert "stalled" in caplog.text


@pytest.mark.slow
def test_sigterm_leaves_playable_segments(rtsp_server: RtspServer, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    cmd = [sys.executable, "-c", "from stream_derain.cli import main; main()", "live", rtsp_server.url,
           "--record", str(rec), "--segment-minutes", "0.02", "--backend", BACKEND, "--threads", "1",
           "--max-seconds", "60", "--status-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        wait_for(lambda: rec.is_dir() and len(list(rec.glob("*.mp4"))) >= 2, 40, "two segments")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, out.decode(errors="replace")[-2000:]
    files = sorted(rec.glob("*.mp4"))
    assert len(files) >= 2
    for f in files:
        with av.open(str(f)) as c:
            assert sum(1 for _ in c.decode(video=0)) > 0, f
