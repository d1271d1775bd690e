"""The stages (stream_derain.stages): the device frame path (frames stay on the backend's
device) gives the same video as the host path. Runs with torch on the CPU here, and on
CUDA when there is a GPU."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from stream_derain.backends import create_backend
from stream_derain.derain import DerainConfig, derain_video
from stream_derain.io.video import EncodeOptions, FrameItem, VideoReader
from stream_derain.stages import InferStage


def frames(path):
    return np.stack([it.image for it in VideoReader(path).items()])


@pytest.mark.parametrize("smooth", [False, True], ids=["raw", "smoothed"])
def test_device_path_matches_host_path(make_clip, tiny_model, tmp_path, smooth):
    pytest.importorskip("torch")
    src = make_clip("in.mp4", frames=8, size=(70, 46), audio=False)
    outs = {}
    for device_frames in (False, True):
        out = tmp_path / f"out_{device_frames}.mkv"
        cfg = DerainConfig(input=src, output=out, smooth=smooth, batch=3, device_frames=device_frames,
                           encode=EncodeOptions(codec="ffv1"))
        with create_backend("torch", tiny_model) as be:
            result = derain_video(cfg, be)
        assert result.frames == 8
        outs[device_frames] = frames(out)
        names = [s.name for s in result.stages]
        assert ("download" in names) == device_frames
    diff = np.abs(outs[True].astype(int) - outs[False])
    if smooth:  # the smoothers' documented tolerance (stream_derain/smooth/gpu.py)
        assert diff.mean() < 0.5 and np.mean(diff <= 3) > 0.995, (diff.mean(), diff.max())
    else:
        assert diff.max() <= 2 and diff.mean() < 0.1


@pytest.mark.gpu
def test_cuda_backend_uses_the_device_path(make_clip, tiny_model, tmp_path):
    pytest.importorskip("torch")
    src = make_clip("in.mp4", frames=4, audio=False)
    with create_backend("torch", tiny_model) as be:
        assert be.device.startswith("cuda")
        result = derain_video(DerainConfig(input=src, output=tmp_path / "o.mp4"), be)
    assert "download" in [s.name for s in result.stages]


class Identity:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        return batch


def items(n: int, start: float = 1000.0) -> list[FrameItem]:
    rng = np.random.default_rng(1)
    return [FrameItem(i, None, None, rng.integers(0, 255, (48, 64, 3), np.uint8), captured=start + i / 25)
            for i in range(n)]


def test_latency_policy_drops_a_late_frame_and_hands_on_its_discontinuity() -> None:
    """Live: a reconnect's first frame may be dropped for latency: the smoother must still reset."""
    inq: queue.Queue = queue.Queue()
    stage = InferStage(threading.Event(), inq, queue.Queue(), Identity(), max_latency_s=0.5)
    old, new = items(2, start=time.monotonic() - 5.0)
    old.discontinuity = True
    inq.put(new)
    assert stage.work(old) == [] and stage.dropped_late == 1  # too old, a newer one waits
    assert stage.work(inq.get_nowait()) == [new] and new.discontinuity


def test_files_never_drop_and_batch_what_waits() -> None:
    inq: queue.Queue = queue.Queue()
    backend = Identity()
    stage = InferStage(threading.Event(), inq, queue.Queue(), backend, batch=3, keep_input=False)
    frames_ = items(5, start=time.monotonic() - 60.0)  # very old: no latency policy, nothing dropped
    for it in frames_[1:]:
        inq.put(it)
    out = stage.work(frames_[0])
    while not inq.empty():
        out += stage.work(inq.get_nowait())
    out += stage.finish()
    assert out == frames_ and stage.dropped_late == 0 and backend.calls == [3, 2]
    assert all(it.rainy is None for it in out)
