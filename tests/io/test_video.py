"""Fidelity of the video path: timestamps, duration, audio, colour, rotation, sizes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from stream_derain.derain import DerainConfig, derain
from stream_derain.engine_spec import EngineSpec
from stream_derain.io.video import EncodeOptions, FrameItem, VideoReader, VideoWriter

BT709_LIMITED = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
BT709_FULL = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 2}
BT601_LIMITED = {"color_primaries": 6, "color_trc": 6, "colorspace": 6, "color_range": 1}


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        frames = list(c.decode(video=0))
        info = {
            "pts": [f.pts for f in frames], "time_base": v.time_base, "size": (v.width, v.height),
            "streams": [s.type for s in c.streams],
            "duration": float(v.duration * v.time_base) if v.duration else None,
            "format_duration": c.duration / 1e6 if c.duration else None,
            "color": (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range),
            "rotation": frames[0].rotation if frames else None,
        }
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    info["audio_packets"] = audio
    return info


def run_derain(src: Path, out: Path, **kw) -> Path:
    batch = kw.pop("batch", 1)
    derain(DerainConfig(input=src, output=out, **kw, engine=EngineSpec(backend="onnxruntime", smooth=False,
                                                                      batch=batch)))
    return out


@pytest.mark.parametrize("steps", [[40], [40, 40, 67, 33, 120]], ids=["cfr", "vfr"])
def test_timestamps_duration_and_audio_are_kept(make_clip, use_tiny_model, tmp_path, steps):
    src = make_clip("in.mp4", frames=15, pts_steps=steps, color=BT709_LIMITED)
    out = run_derain(src, tmp_path / "out.mp4")
    a, b = probe(src), probe(out)
    assert b["pts"] == a["pts"] and len(b["pts"]) == 15
    assert b["time_base"] == a["time_base"]
    # what players show; an MP4's stream duration is the sum of decode-order steps, and
    # a VFR source's with B-frames differs from its presentation by a few ms (0.8 s for 0.82)
    assert b["format_duration"] == pytest.approx(a["format_duration"], abs=1e-3)
    if len(steps) == 1:
        assert b["duration"] == pytest.approx(a["duration"], abs=1e-3)
    assert b["streams"] == ["video", "audio"]
    assert b["audio_packets"] == a["audio_packets"] and len(a["audio_packets"]) > 5


@pytest.mark.parametrize("tags", [BT709_LIMITED, BT709_FULL, BT601_LIMITED],
                         ids=["709-limited", "709-full", "601"])
def test_colour_tags_are_kept(make_clip, use_tiny_model, tmp_path, tags):
    src = make_clip("in.mp4", frames=4, color=tags, audio=False)
    out = run_derain(src, tmp_path / "out.mp4")
    expected = (tags["color_primaries"], tags["color_trc"], tags["colorspace"], tags["color_range"])
    assert probe(out)["color"] == expected


@pytest.mark.parametrize("tags", [BT709_FULL, BT709_LIMITED], ids=["709-full", "709-limited"])
def test_rgb_round_trip_uses_the_source_matrix_and_range(make_clip, tmp_path, tags):
    """Decode -> RGB -> encode -> decode must give back the same RGB (no range or
    matrix mix-up, which would shift levels by ~10-30 codes)."""
    src = make_clip("in.mp4", frames=3, color=tags, audio=False, codec="libx264")
    reader = VideoReader(src)
    frames = [it for it in reader.items()]
    writer = VideoWriter(tmp_path / "rt.mp4", reader.info, EncodeOptions(crf=0, preset="ultrafast"))
    for it in frames:
        writer.write_frame(it)
    writer.close()
    reader.close()
    again = [it.image for it in VideoReader(tmp_path / "rt.mp4").items()]
    diff = np.abs(np.stack(again).astype(int) - np.stack([f.image for f in frames])).mean()
    assert diff < 2.0


def test_odd_frame_size_is_padded_and_cropped_back(make_clip, use_tiny_model, tmp_path):
    src = make_clip("odd.mkv", frames=5, size=(95, 63), pix_fmt="yuv444p", audio=False)
    out = run_derain(src, tmp_path / "out.mkv")
    assert probe(out)["size"] == (95, 63)
    assert len(probe(out)["pts"]) == 5


def test_rotation_metadata_is_kept(make_clip, use_tiny_model, tmp_path):
    src = make_clip("rot.mp4", frames=4, rotation=90, audio=False)
    assert probe(src)["rotation"] == 90
    out = run_derain(src, tmp_path / "out.mp4")
    assert probe(out)["rotation"] == 90


@pytest.mark.parametrize("name,codec,pix_fmt", [
    ("in.mkv", "libvpx-vp9", "yuv420p"), ("in.avi", "mjpeg", "yuvj420p"), ("in.mov", "libx265", "yuv420p"),
])
def test_other_containers_and_codecs(make_clip, use_tiny_model, tmp_path, name, codec, pix_fmt):
    src = make_clip(name, frames=6, codec=codec, pix_fmt=pix_fmt, audio=False)
    out = run_derain(src, tmp_path / ("out" + Path(name).suffix))
    assert len(probe(out)["pts"]) == 6


def test_frame_range(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=20, audio=False)
    out = run_derain(src, tmp_path / "out.mp4", start=5, max_frames=7)
    kept = probe(src)["pts"][5:12]
    assert probe(out)["pts"] == [p - kept[0] for p in kept]  # the clock restarts at the cut, as --ss


def test_batched_inference_gives_the_same_frames(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=9, audio=False)
    one = run_derain(src, tmp_path / "b1.mkv", batch=1, encode=EncodeOptions(codec="ffv1"))
    four = run_derain(src, tmp_path / "b4.mkv", batch=4, encode=EncodeOptions(codec="ffv1"))
    a = np.stack([it.image for it in VideoReader(one).items()])
    b = np.stack([it.image for it in VideoReader(four).items()])
    assert np.abs(a.astype(int) - b).max() <= 1


def test_nvdec_request_decodes_the_same_frames(make_clip):
    """hwaccel='cuda' decodes on NVDEC where there is one and falls back to the CPU
    elsewhere; either way the frames are the same."""
    src = make_clip("in.mp4", frames=5, audio=False)
    soft = [it.image for it in VideoReader(src, hwaccel="none").items()]
    hard = [it.image for it in VideoReader(src, hwaccel="cuda").items()]
    assert len(hard) == len(soft) == 5
    assert np.abs(np.stack(hard).astype(int) - np.stack(soft)).mean() < 1.0


def test_timestamp_gap_marks_a_discontinuity(make_clip):
    # 40 ms frames with one 400 ms jump before the 6th frame (a dropout in a dashcam file)
    path = make_clip("gap.mp4", frames=10, pts_steps=[40, 40, 40, 40, 400, 40, 40, 40, 40, 40], audio=False)
    reader = VideoReader(path)
    try:
        marks = [item.discontinuity for item in reader.items() if isinstance(item, FrameItem)]
    finally:
        reader.close()
    assert len(marks) == 10 and [i for i, m in enumerate(marks) if m] == [5]


def test_rotation_is_kept_with_audio(make_clip, use_tiny_model, tmp_path):
    """Audio packets muxed before the first frame wrote the header without the display
    matrix; they are now held back until the first frame."""
    src = make_clip("rot.mp4", frames=6, rotation=90, audio=True)
    out = run_derain(src, tmp_path / "out.mp4")
    assert probe(out)["rotation"] == 90 and probe(out)["streams"] == ["video", "audio"]


def _tagged_clip(make_clip, tmp_path: Path, name: str) -> Path:
    """A clip with container and stream tags, as a camera writes them (ffmpeg remux)."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    plain = make_clip("plain" + Path(name).suffix, frames=5, audio=True)
    path = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata",
                    "title=Rain on the A9", "-metadata", "creation_time=2026-11-02T07:31:05Z",
                    "-metadata:s:v", "language=eng", "-metadata:s:a", "language=deu", str(path)], check=True)
    return path


@pytest.mark.parametrize("name", ["tagged.mp4", "tagged.mkv"])
def test_metadata_is_kept(make_clip, use_tiny_model, tmp_path, name):
    src = _tagged_clip(make_clip, tmp_path, name)
    out = run_derain(src, tmp_path / ("out" + Path(name).suffix))
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "Rain on the A9"
        assert c.metadata.get("creation_time", "").startswith("2026-11-02T07:31:05")
        assert c.streams.video[0].metadata.get("language") == "eng"
        assert c.streams.audio[0].metadata.get("language") == "deu"


def test_last_frame_duration_without_source_durations(make_clip, use_tiny_model, tmp_path):
    """A VFR source whose frames carry no duration: the last frame lasts as long as the
    step before it, so the output is not a frame shorter than the source."""
    src = make_clip("vfr.mkv", frames=9, pts_steps=[40, 40, 120, 40, 80], audio=False)
    out = run_derain(src, tmp_path / "out.mkv")
    a, b = probe(src), probe(out)
    assert b["pts"] == a["pts"]
    with av.open(str(src)) as c:
        src_end = max(f.pts + (f.duration or 0) for f in c.decode(video=0))
    with av.open(str(out)) as c:
        out_end = max(f.pts + (f.duration or 0) for f in c.decode(video=0))
    assert out_end >= src_end


def test_damaged_end_keeps_every_frame_ffmpeg_decodes(make_clip, use_tiny_model, tmp_path):
    """A broken NAL length two frames before the end: frame threading lost 3 frames
    around it (16 of 20), ffmpeg decodes 19; so does the reader (slice threading)."""
    src = make_clip("in.mkv", frames=20, audio=False)
    with av.open(str(src)) as c:
        payload = [bytes(p) for p in c.demux(video=0) if p.size][18]
    data = bytearray(src.read_bytes())
    at = bytes(data).find(payload)
    data[at:at + 4] = b"\x7f\xff\xff\xff"
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    out = run_derain(bad, tmp_path / "out.mkv")
    assert len(probe(out)["pts"]) == 19
