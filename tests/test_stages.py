"""The stages (stream_derain.stages): the device frame path (frames stay on the backend's
device) gives the same video as the host path. Runs with torch on the CPU here, and on
CUDA when there is a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from stream_derain.backends import create_backend
from stream_derain.derain import DerainConfig, derain_video
from stream_derain.io.video import EncodeOptions, VideoReader

pytest.importorskip("torch")


def frames(path):
    return np.stack([it.image for it in VideoReader(path).items()])


@pytest.mark.parametrize("smooth", [False, True], ids=["raw", "smoothed"])
def test_device_path_matches_host_path(make_clip, tiny_model, tmp_path, smooth):
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
    src = make_clip("in.mp4", frames=4, audio=False)
    with create_backend("torch", tiny_model) as be:
        assert be.device.startswith("cuda")
        result = derain_video(DerainConfig(input=src, output=tmp_path / "o.mp4"), be)
    assert "download" in [s.name for s in result.stages]
