"""Issue 15: one encoder core (io.encoder.VideoEncoder) for the file writer and the live
outputs (recorder and push share live.outputs.LiveEncoder)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stream_derain.derain import DerainConfig
from stream_derain.io.encode_options import EncodeOptions, codec_options
from stream_derain.io.encoder import ColorInfo, VideoEncoder
from stream_derain.io.video import FrameItem, VideoInfo, VideoWriter
from stream_derain.live.outputs import SegmentRecorder

FAST = EncodeOptions(preset="ultrafast")


def _frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), np.uint8) for _ in range(n)]


def test_file_writer_and_live_outputs_encode_through_the_one_core(tmp_path: Path, monkeypatch) -> None:
    used: list[VideoEncoder] = []
    real = VideoEncoder.encode

    def spy(self: VideoEncoder, image: np.ndarray, pts: int, time_base: Fraction) -> list[av.Packet]:
        used.append(self)
        return real(self, image, pts, time_base)

    monkeypatch.setattr(VideoEncoder, "encode", spy)
    info = VideoInfo(64, 48, Fraction(1, 25), Fraction(25), 0, "h264", "yuv420p", ColorInfo())
    writer = VideoWriter(tmp_path / "file.mp4", info, FAST)
    for i, img in enumerate(_frames(5)):
        writer.write_frame(FrameItem(i, i, Fraction(1, 25), img, duration=1))
    writer.close()

    rec = SegmentRecorder(tmp_path / "rec", segment_s=60.0, encode=FAST)
    for i, img in enumerate(_frames(5, 49, 65)):  # odd size: the live core crops to even
        rec.write(FrameItem(i, None, None, img, captured=10 + i / 25))
    live = rec.encoder
    rec.close()

    assert isinstance(writer.encoder, VideoEncoder) and isinstance(live.encoder, VideoEncoder)
    assert used == [writer.encoder] * 5 + [live.encoder] * 5
    assert live.encoder.size == (64, 48)
    opts = live.encoder.options
    assert writer.encoder.options.get("tune") is None and opts["tune"] == "zerolatency" and opts["bf"] == "0"
    for path in (tmp_path / "file.mp4", rec.files[0]):
        with av.open(str(path)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 5


def test_core_sets_threads_gop_and_colour_tags(tmp_path: Path) -> None:
    color = ColorInfo(range=1, space=1, primaries=1, trc=1)
    with av.open(str(tmp_path / "c.mkv"), "w") as container:
        enc = VideoEncoder(container, EncodeOptions(preset="ultrafast", threads=1), 64, 48, rate=25,
                           time_base=Fraction(1, 25), color=color, gop=10)
        cc = enc.stream.codec_context
        assert (cc.thread_count, cc.gop_size, cc.colorspace, cc.color_range) == (1, 10, 1, 1)
        for i, img in enumerate(_frames(3)):
            for p in enc.encode(img, i, Fraction(1, 25)):
                container.mux(p)
        for p in enc.flush():
            container.mux(p)
    with av.open(str(tmp_path / "c.mkv")) as c:
        assert ColorInfo.of(c.streams.video[0].codec_context).space == 1


def test_software_x264_x265_default_to_veryfast_and_a_given_preset_wins(tmp_path: Path) -> None:
    """Issue 14, item 4: no preset given -> veryfast reaches x264's options (README,
    Performance: a third of medium's CPU per frame); --preset still overrides it."""
    info = VideoInfo(64, 48, Fraction(1, 25), Fraction(25), 0, "h264", "yuv420p", ColorInfo())
    for opts, preset in ((EncodeOptions(), "veryfast"), (EncodeOptions(codec="libx265"), "veryfast"),
                         (EncodeOptions(preset="slow"), "slow")):
        writer = VideoWriter(tmp_path / "p.mkv", info, opts)
        try:
            assert writer.encoder.options["preset"] == preset
        finally:
            writer.close()
    rec = SegmentRecorder(tmp_path / "rec", segment_s=60.0, encode=EncodeOptions())
    rec.write(FrameItem(0, None, None, _frames(1)[0], captured=1.0))
    assert rec.encoder.encoder.options["preset"] == "veryfast"
    rec.close()


def test_the_default_preset_leaves_other_encoders_alone() -> None:
    assert "preset" not in codec_options("h264_nvenc", EncodeOptions(codec="h264_nvenc"))
    assert "preset" not in codec_options("libsvtav1", EncodeOptions(codec="libsvtav1"))
    assert codec_options("libx264", EncodeOptions(preset="medium"))["preset"] == "medium"
    assert DerainConfig(input=Path("x.mp4")).encode.preset is None  # the default is the encoder core's
