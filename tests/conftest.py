"""Shared fixtures: a tiny random-weight student exported to ONNX, and generated clips.

Capability markers skip by probing, never by hope: ``gpu`` needs torch with CUDA,
``tensorrt`` needs tensorrt or tensorrt_rtx importable, ``data`` needs ../shared/data,
``browser`` a headless Chromium (or Chrome) on PATH.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from browsers import browser

from stream_derain.train.config import DATA_ROOT


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda() -> bool:
    if not _has("torch"):
        return False
    import torch

    return torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _no_handler_on_a_closed_stream() -> Iterator[None]:
    """A CLI run in a test installs a root handler on the runner's captured stderr
    (``setup_logging``), which is closed when the run ends; a later test's log record then
    met a closed file ("--- Logging error ---" in CI). Such handlers go after each test."""
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    probes = {
        "gpu": (_cuda(), "no CUDA GPU visible to torch"),
        "tensorrt": (_has("tensorrt") or _has("tensorrt_rtx"),
                     "neither tensorrt nor tensorrt_rtx is installed"),
        "data": (DATA_ROOT.is_dir(), f"research data not found at {DATA_ROOT}"),
        "torch": (_has("torch"), "torch is not installed"),
        "browser": (browser() is not None, "no Chromium or Chrome on PATH"),
    }
    for item in items:
        for mark, (ok, why) in probes.items():
            if mark in item.keywords and not ok:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with manifest.json and a small random-weight student (fp32 + fp16)."""
    pytest.importorskip("torch")
    import torch

    from stream_derain.model.export import export_model
    from stream_derain.model.student import build_student

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("engines")
    model = build_student(channels=12, se_blocks=1, ca_blocks=1)
    for head in (model.rain_head, model.detail_head):  # untrained heads are zero: make it do something
        torch.nn.init.normal_(head.weight, std=0.02)
        torch.nn.init.normal_(head.bias, std=0.01)
    export_model(model, folder, "tiny", "test")
    return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):  # noqa: ANN201 - ModelInfo
    from stream_derain.catalog import load_model_info

    return load_model_info("tiny", tiny_model_dir)


def write_clip(path: Path, *, frames: int = 12, size: tuple[int, int] = (96, 64),
               pts_steps: list[int] | None = None, time_base: tuple[int, int] = (1, 1000),
               audio: bool = True, color: dict[str, int] | None = None, codec: str = "libx264",
               pix_fmt: str = "yuv420p", rotation: float = 0.0, seed: int = 0,
               tags: dict[str, str] | None = None) -> Path:
    """Write a small test clip with PyAV: moving gradient frames with optional variable
    frame durations (``pts_steps`` cycles, in time-base ticks), a sine audio track,
    colour tags, a display rotation and container ``tags``. Returns ``path``."""
    from fractions import Fraction

    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    w, h = size
    tb = Fraction(*time_base)
    steps = pts_steps or [40]
    c = av.open(str(path), "w")
    c.metadata.update(tags or {})
    v = c.add_stream(codec, rate=25)
    v.width, v.height, v.pix_fmt = w, h, pix_fmt
    v.time_base = v.codec_context.time_base = tb
    for key, value in (color or {}).items():
        setattr(v.codec_context, key, value)
    if rotation:
        v.set_display_rotation(rotation)
    a = None
    if audio:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
    yy, xx = np.mgrid[0:h, 0:w]
    pts = 0
    for i in range(frames):
        img = np.stack([(xx * 3 + i * 5) % 256, (yy * 3) % 256, (xx + yy + i * 9) % 256], -1).astype(np.uint8)
        img = np.clip(img.astype(int) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
        f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
        for key, value in (color or {}).items():
            setattr(f, key, value)
        f.pts, f.time_base = pts, tb
        pts += steps[i % len(steps)]
        for p in v.encode(f):
            c.mux(p)
    if a is not None:
        dur = float(pts * tb)
        t = np.arange(int(dur * 16000)) / 16000
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(samples), 1024):
            af = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    for p in v.encode():
        c.mux(p)
    c.close()
    return path


@pytest.fixture
def make_clip(tmp_path: Path):  # noqa: ANN201 - factory
    """``make_clip(name, **kwargs)`` -> path of a generated clip in tmp_path."""
    return lambda name="clip.mp4", **kw: write_clip(tmp_path / name, **kw)


@pytest.fixture
def use_tiny_model(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the tiny model the default model for code that reads the manifest."""
    monkeypatch.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    return tiny_model_dir
