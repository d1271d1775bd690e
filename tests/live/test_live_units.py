"""Live building blocks without a camera: backoff, segments, preview, push, errors."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from streams import free_port

from stream_derain.engine_spec import EngineSpec
from stream_derain.errors import ConfigError, InputError, OutputError
from stream_derain.io.video import FrameItem
from stream_derain.live import (
    LiveConfig,
    LiveStats,
    PreviewServer,
    PushOutput,
    SegmentRecorder,
    SourceConfig,
    run_live,
)
from stream_derain.live.outputs import CallbackOutput
from stream_derain.live.source import ReconnectingSource, backoff_delay
from stream_derain.pipeline import DropOldestQueue


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


def test_a_dropped_frames_discontinuity_moves_to_the_next_frame() -> None:
    """A reconnect's first frame may be dropped for latency: the smoother must still reset."""
    q = DropOldestQueue(2)
    items = frames(5)
    items[1].discontinuity = True
    for item in items:
        q.put(item)
    kept = [q.get_nowait(), q.get_nowait()]
    assert q.dropped == 3 and [i.index for i in kept] == [3, 4] and kept[0].discontinuity
    # and one dropped at inference for latency: tests/test_stages.py


def test_live_and_files_run_the_same_stage_classes(make_clip, tiny_model,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The stages between source and sink are the same classes for a file (derain) and a
    live stream, on the host path and, with torch, on the device path."""
    from stream_derain import stages
    from stream_derain.backends import create_backend
    from stream_derain.derain import DerainConfig, derain_video
    from stream_derain.live import run as live_run
    from stream_derain.pipeline import Pipeline

    built: list[list[type]] = []
    add = Pipeline.add

    def spy(self: Pipeline, stage: object) -> object:
        if not self.stages:
            built.append([])
        built[-1].append(type(stage))
        return add(self, stage)

    monkeypatch.setattr(Pipeline, "add", spy)
    clip = make_clip("same.mp4", frames=2, size=(96, 64), audio=False)
    source = type("Source", (), {"frames": lambda self: iter(()), "close": lambda self: None})()
    kinds = ["onnxruntime"] + (["torch"] if _has_torch() else [])
    for kind in kinds:
        with create_backend(kind, tiny_model, "fp32", 1) as be:
            for smooth in (False, True):
                cfg = DerainConfig(input=clip, output=clip.with_name(f"o_{kind}_{smooth}.mp4"),
                                   engine=EngineSpec(smooth=smooth, batch=2, device_frames=kind == "torch"))
                derain_video(cfg, be)
                live = LiveConfig(SourceConfig("rtsp://127.0.0.1:1/x"),
                                  engine=EngineSpec(smooth=smooth, batch=2, device_frames=kind == "torch"))
                live_run._pipeline(live, be, source, Pipeline(), [], live_run._Meter())
                file_stages, live_stages = built[-2], built[-1]
                assert file_stages[0] is live_stages[0] is stages.DecodeStage
                assert file_stages[1:-1] == live_stages[1:-1], (kind, smooth)
                assert (file_stages[-1], live_stages[-1]) == (stages.EncodeStage, live_run.OutputStage)
                assert (stages.SmoothStage in live_stages) == smooth
                assert (stages.DownloadStage in live_stages) == (kind == "torch")


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def test_open_segment_plays_after_a_crash(tmp_path: Path) -> None:
    """No close (as after SIGKILL): the segment on disk still plays up to its last fragment."""
    rec = SegmentRecorder(tmp_path, segment_s=600.0, fps=25)
    for item in frames(120):  # keyframes (fragment starts) at least every 50 frames
        rec.write(item)
    crashed = tmp_path / "crashed.mp4"
    shutil.copy(rec.files[0], crashed)
    try:
        assert decode_all(crashed) >= 50
    finally:
        rec.close()
    assert decode_all(rec.files[0]) == 120


def test_status_line_shows_what_a_user_watches() -> None:
    stats = LiveStats(fps_in=25.0, fps_out=12.5, latency_s=0.25, latency_p95_s=0.3, dropped_queue=3,
                      dropped_late=4, reconnects=2, connected=True, backend="onnxruntime (fp32, cpu)")
    line = stats.line()
    for part in ("in  25.0 fps", "out  12.5 fps", "latency  250 ms", "dropped 7", "reconnects 2",
                 "connected", "onnxruntime"):
        assert part in line, line
    assert "RECONNECTING" in LiveStats().line()


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
        assert urllib.request.urlopen(base + "/stats.json", timeout=5).read() == b"{}"  # no status yet
        stats = LiveStats(fps_in=25.0, latency_s=0.25, dropped_late=3, connected=True, backend="openvino")
        preview.publish(stats.as_dict())
        shown = json.loads(urllib.request.urlopen(base + "/stats.json", timeout=5).read())
        assert shown["fps_in"] == 25.0 and shown["dropped"] == 3 and shown["connected"] is True
        assert b"/stats.json" in page and b"latency" in page  # the page shows the status
    finally:
        preview.close()


def _listening_ffmpeg(url: str, out: Path) -> subprocess.Popen:
    """ffmpeg as the receiving server (RTSP or RTMP listen mode); it writes what it gets."""
    listen = ["-rtsp_flags", "listen"] if url.startswith("rtsp:") else ["-listen", "1", "-f", "flv"]
    return subprocess.Popen([shutil.which("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin",
                             *listen, "-i", url, "-c", "copy", str(out)], stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_push_reaches_a_listening_server(scheme: str, tmp_path: Path, needs_ffmpeg: None) -> None:
    port, out = free_port(), tmp_path / "pushed.mkv"
    url = f"{scheme}://127.0.0.1:{port}/live/in"
    proc = _listening_ffmpeg(url, out)
    try:
        push = PushOutput(url, fps=25, retry_s=0.3)
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


def test_cli_sigterm_while_connecting_exits_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "live.log"
    cmd = [sys.executable, "-c", "from stream_derain.cli import main; main()", "live",
           f"rtsp://127.0.0.1:{free_port()}/live", "--retries", "50", "--backoff", "2", "--backoff-max", "2",
           "--record", str(tmp_path / "rec"), "--backend", "onnxruntime", "-q"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "retrying in" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text(errors="replace")
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = log.read_text(errors="replace")
    assert "interrupted while connecting" in text and "Traceback" not in text


def test_live_window_is_centred_only_where_the_latency_bound_leaves_room() -> None:
    from stream_derain.live.run import window_mode

    assert window_mode("auto", 2, 25, 1.0, 0.1) == "centred"  # 80 ms of look-ahead + 200 ms inference
    assert window_mode("auto", 2, 25, 0.25, 0.1) == "causal"  # 280 ms > 250 ms
    assert window_mode("auto", 2, 5, 0.5, 0.0) == "centred"  # a slow camera: 400 ms of look-ahead fits
    assert window_mode("auto", 2, 2, 0.5, 0.0) == "causal"  # 1 s of look-ahead alone does not
    assert window_mode("auto", 0, 25, 1.0, 0.0) == "causal"  # nothing to wait for
    assert window_mode("centred", 2, 25, 0.01, 1.0) == "centred"  # asked for: as asked
    assert window_mode("causal", 2, 25, 9.0, 0.0) == "causal"


def test_live_runs_a_multi_frame_model_with_the_window_it_chose(tmp_path: Path) -> None:
    """auto: centred at 25 fps under a 1 s bound, causal under 10 ms (timing one inference)."""
    pytest.importorskip("onnx")
    from multiframe_models import write_models

    from stream_derain.backends import create_backend
    from stream_derain.catalog import load_model_info
    from stream_derain.live import run as live_run
    from stream_derain.pipeline import Pipeline

    source = type("Source", (), {"frames": lambda self: iter(()), "close": lambda self: None,
                                 "fps": 25, "width": 64, "height": 48})()
    model = load_model_info("max-k5", write_models(tmp_path, (5,)))
    with create_backend("onnxruntime", model, "fp32", 1) as be:
        for bound, want in ((1.0, "centred"), (0.01, "causal")):
            live = LiveConfig(SourceConfig("rtsp://127.0.0.1:1/x"), engine=EngineSpec(smooth=False),
                              max_latency_s=bound)
            _, infer = live_run._pipeline(live, be, source, Pipeline(), [], live_run._Meter())
            assert infer.mode == want and infer.window is not None
        live = LiveConfig(SourceConfig("rtsp://127.0.0.1:1/x"), engine=EngineSpec(window="centred"),
                          max_latency_s=0.01)
        assert live_run._pipeline(live, be, source, Pipeline(), [], live_run._Meter())[1].mode == "centred"


def test_live_runs_the_manifests_live_default_when_no_model_is_named(tmp_path: Path, monkeypatch) -> None:
    """A manifest may name a ``live_default`` (a model that keeps up with a camera) beside
    its ``default``: live runs it when no model is named, files never do; a named model
    wins everywhere; without the key live runs the default."""
    pytest.importorskip("onnx")
    from multiframe_models import write_models

    from stream_derain.catalog import resolve_model
    from stream_derain.live import run as live_run

    folder = write_models(tmp_path, (5,))
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(folder))
    opened: list[str] = []

    def fake_open(spec, model=None, factory=None):
        opened.append(model.name)
        raise RuntimeError("opened")

    monkeypatch.setattr(live_run, "open_engine", fake_open)

    def live_model(model: str | None) -> str:
        with pytest.raises(RuntimeError, match="opened"):
            run_live(LiveConfig(SourceConfig("rtsp://127.0.0.1:1/x"), record_dir=tmp_path / "rec",
                                engine=EngineSpec(model=model)))
        return opened[-1]

    assert live_model(None) == "max-k5" == resolve_model().name  # no live_default: the default
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "live_default": "slot1-k5"}))
    assert live_model(None) == "slot1-k5" and resolve_model().name == "max-k5"
    assert live_model("slot2-k5") == "slot2-k5"
