"""The bundled rainy sample clips: right size, length, codec, colour tags and audio."""

from __future__ import annotations

from pathlib import Path

import pytest

av = pytest.importorskip("av")

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CLIPS = {
    "rainy_launchpad_720p.mp4": (1280, 720),
    "rainy_cafe_table_360p.mp4": (640, 360),
}
MAX_BYTES = 5_000_000


@pytest.fixture(params=sorted(CLIPS), ids=lambda name: name)
def clip(request: pytest.FixtureRequest) -> tuple[Path, tuple[int, int]]:
    path = SAMPLES / request.param
    assert path.is_file(), f"{path} is missing: run python scripts/make_samples.py"
    return path, CLIPS[request.param]


def test_size_under_budget(clip: tuple[Path, tuple[int, int]]) -> None:
    path, _ = clip
    assert path.stat().st_size < MAX_BYTES


def test_video_stream(clip: tuple[Path, tuple[int, int]]) -> None:
    path, (width, height) = clip
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (width, height)
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 25
        decoded = sum(1 for _ in container.decode(stream))
    assert decoded == 125


def test_colour_tags_bt709_limited(clip: tuple[Path, tuple[int, int]]) -> None:
    path, _ = clip
    rf = av.video.reformatter
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        assert cc.color_primaries == rf.ColorPrimaries.BT709
        assert cc.color_trc == rf.ColorTrc.BT709
        assert cc.colorspace == rf.Colorspace.ITU709
        assert cc.color_range == rf.ColorRange.MPEG  # limited ("tv") range
        frame = next(container.decode(stream))
    assert (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range) == (
        rf.ColorPrimaries.BT709, rf.ColorTrc.BT709, rf.Colorspace.ITU709, rf.ColorRange.MPEG)


def test_audio_stream(clip: tuple[Path, tuple[int, int]]) -> None:
    path, _ = clip
    with av.open(str(path)) as container:
        assert container.streams.audio, "no audio track"
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.channels == 2
        samples = sum(frame.samples for frame in container.decode(audio))
    assert samples >= 5 * audio.codec_context.sample_rate * 0.98  # about 5 s of sound
