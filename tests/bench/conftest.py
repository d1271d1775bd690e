"""Fixtures for the bench tests: the tiny model as the shipped one, a short clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture()
def tiny_engines(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the tiny model the one ``resolve_model`` finds; returns its name."""
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    return "tiny"


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8-frame 128x96 H.264 clip of a moving gradient with white streaks."""
    av = pytest.importorskip("av")
    path = tmp_path_factory.mktemp("clip") / "short.mp4"
    h, w = 96, 128
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(8):
            x = np.linspace(0, 255, w)[None, :, None] + 4 * i
            img = np.broadcast_to(x % 256, (h, w, 3)).astype(np.uint8).copy()
            img[(np.arange(h) * 3 + i * 5) % h, (np.arange(h) + i * 7) % w] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
