"""Damaged inputs through the real command (issue 13): files truncated at random
offsets, bit flips in the header, the index (an MP4's moov is at the end) and the
payload, tiny and extreme frame sizes. Each case must end without a traceback and
without hanging; exit 0 only with an output holding every frame ffmpeg decodes from
the input; the input's bytes unchanged; no temporary file left behind.

The default set is a dozen cases (a few seconds); ``-m slow`` adds a wider one."""

from __future__ import annotations

import faulthandler
import functools
import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from stream_derain.cli import app

CASE_TIMEOUT_S = 60  # a hang ends the test run with every thread's stack


@functools.cache
def ffprobe_is_pyavs_ffmpeg() -> bool:
    """Whether the ffprobe on PATH links the libavformat major version PyAV links: two
    FFmpeg versions read a damaged index differently (FFmpeg 5.1 applies a damaged edit
    list and discards the first frames; the FFmpeg 8 PyAV ships does not)."""
    if shutil.which("ffprobe") is None:
        return False
    text = subprocess.run(["ffprobe", "-version"], capture_output=True, text=True, timeout=30).stdout
    line = next((ln for ln in text.splitlines() if ln.startswith("libavformat")), "")
    major = line.split()[1].rstrip(".") if len(line.split()) > 1 else ""
    return major.isdigit() and int(major) == av.library_versions["libavformat"][0]


def pyav_frames(path: Path) -> int | None:
    """Frames PyAV's FFmpeg decodes from ``path``, packet by packet as the ffmpeg tool does:
    a packet the decoder rejects is skipped, a damaged end stops the demuxer (None when
    the file does not open)."""
    try:
        container = av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return None
    count = 0
    with container:
        if not container.streams.video or container.streams.video[0].codec_context is None:
            return None
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                try:
                    count += len(packet.decode())
                except av.error.InvalidDataError:
                    continue
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
            count += len(stream.codec_context.decode(None))
    return count


def ffmpeg_frames(path: Path) -> int | None:
    """Frames FFmpeg decodes from ``path``: ffprobe's count where it is PyAV's FFmpeg,
    else PyAV's own (None when neither can say)."""
    if not ffprobe_is_pyavs_ffmpeg():
        return pyav_frames(path)
    run = subprocess.run(["ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60)
    text = run.stdout.strip().split(",")[0] if run.stdout.strip() else ""
    return int(text) if text.isdigit() else None


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def damaged(data: bytes, kind: str, rng: random.Random) -> bytes:
    n = len(data)
    if kind == "truncate":
        return data[:rng.randrange(64, n)]
    b = bytearray(data)
    lo, hi = {"head": (0, min(600, n)), "tail": (max(n - 1500, 0), n), "payload": (n // 4, 3 * n // 4)}[kind]
    for _ in range(rng.choice([1, 4, 16])):
        i = rng.randrange(lo, hi)
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def make_cases(make_clip, tmp_path: Path, count: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    bases = [make_clip("base.mp4", frames=12, audio=True), make_clip("base.mkv", frames=12, audio=True)]
    kinds = ["truncate", "truncate", "head", "tail", "payload"]
    cases = []
    for k in range(count):
        base = bases[k % 2]
        kind = kinds[k % len(kinds)] if k < 2 * len(kinds) else rng.choice(kinds)
        path = tmp_path / f"case{k:02d}_{kind}{base.suffix}"
        path.write_bytes(damaged(base.read_bytes(), kind, rng))
        cases.append(path)
    return cases


def check_case(src: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / f"out_{src.stem}.mkv"
    faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
    try:
        result = CliRunner().invoke(app, ["derain", str(src), "-o", str(out), "-q",
                                          "--backend", "onnxruntime"])
    finally:
        faulthandler.cancel_dump_traceback_later()
    text = result.output
    assert "Traceback" not in text and not isinstance(result.exception, Exception), (src.name, text)
    assert result.exit_code in (0, 1), (src.name, result.exit_code, text)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before, f"{src.name}: input modified"
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name], f"{src.name}: temporary file left"
    if result.exit_code == 1:
        errors = [ln for ln in text.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1 and not out.exists(), (src.name, text)
        return
    expected = ffmpeg_frames(src)
    got = frames_in(out)
    assert got > 0 and (expected is None or got == expected), (src.name, got, expected)


def test_damaged_files(make_clip, use_tiny_model, tmp_path):
    for src in make_cases(make_clip, tmp_path, count=10, seed=13):
        check_case(src, tmp_path)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (1000, 8), (8, 600)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_tiny_and_extreme_sizes(make_clip, use_tiny_model, tmp_path, size):
    src = make_clip(f"s{size[0]}x{size[1]}.mkv", frames=3, size=size, audio=False, pix_fmt="yuv444p")
    check_case(src, tmp_path)


@pytest.mark.slow
def test_damaged_files_wide(make_clip, use_tiny_model, tmp_path):
    for src in make_cases(make_clip, tmp_path, count=40, seed=2026):
        check_case(src, tmp_path)


def test_truncated_before_the_codec_description(make_clip, use_tiny_model, tmp_path):
    """An MP4 cut after its video track's handler but before the sample description:
    FFmpeg lists a video stream with no codec (PyAV gives no codec context). CI's wide
    fuzz found it (an AttributeError in the probe)."""
    data = make_clip("base.mp4", frames=12, audio=True).read_bytes()
    cut = data.index(b"stsd", data.index(b"moov"))  # the box's size written, its type not
    src = tmp_path / "cut_in_stsd.mp4"
    src.write_bytes(data[:cut])
    check_case(src, tmp_path)


def test_a_tag_that_is_not_utf8(make_clip, use_tiny_model, tmp_path):
    """A bit flip in an MKV's title makes it invalid UTF-8: PyAV's strict decoding failed
    the whole open (a UnicodeDecodeError). The file still derains, the tag replaced."""
    data = make_clip("base.mkv", frames=12, audio=True, tags={"title": "pluie \u00e9t\u00e9"}).read_bytes()
    at = data.index("\u00e9".encode())
    src = tmp_path / "bad_tag.mkv"
    src.write_bytes(data[:at] + b"\xff" + data[at + 1:])  # 0xff is never UTF-8
    with pytest.raises(UnicodeDecodeError):
        av.open(str(src)).close()
    check_case(src, tmp_path)
    with av.open(str(tmp_path / "out_bad_tag.mkv")) as out:
        assert out.metadata.get("title", "").startswith("pluie \ufffd")


def test_an_audio_track_without_its_decoder_config(make_clip, use_tiny_model, tmp_path):
    """A bit flip renames the MP4's ``esds`` box (the AAC decoder config): Matroska's
    muxer refuses the copied track, at its header and again at its trailer. One
    ``Error:`` line, no output; the trailer's refusal escaped as a traceback before."""
    data = make_clip("base.mp4", frames=12, audio=True).read_bytes()
    at = data.index(b"esds")
    src = tmp_path / "no_esds.mp4"
    src.write_bytes(data[:at] + b"esdr" + data[at + 4:])
    check_case(src, tmp_path)
