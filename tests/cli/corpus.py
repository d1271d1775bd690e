"""A corpus of hostile and damaged inputs (issue 30), made with PyAV, small and fast.

Each case is a function ``(folder) -> (input path, Expect)``; :data:`CASES` names them.
``python tests/cli/corpus.py DIR`` writes the corpus to DIR (to try other tools on it).
The expectations are what ``ffmpeg -i IN -map 0 OUT`` would keep: the frame count and
the time from the first frame shown to the end of the last, or an ``Error:`` line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MS = Fraction(1, 1000)
ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
              b"Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")


@dataclass(frozen=True)
class Expect:
    frames: int | None = None  # None: an error is expected
    seconds: float | None = None  # first frame shown to the end of the last; None: not checked
    error: tuple[str, ...] = ()  # words of the Error: line
    args: tuple[str, ...] = ()  # extra derain options
    output: str = "out.mp4"
    warns: tuple[str, ...] = ()  # words logged
    at_least: bool = False  # a damaged file: at least ``frames`` (what the decoder still gets)
    size: tuple[int, int] | None = None  # the output's frame size
    tags: dict = field(default_factory=dict)


def picture(w: int, h: int, i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 5 + i * 7) % 256, (yy * 5) % 256, (xx + yy + i * 11) % 256], -1).astype(np.uint8)


def clip(path: Path, n: int = 10, size: tuple[int, int] = (96, 64), *, codec: str = "libx264",
         pix_fmt: str = "yuv420p", fmt: str | None = None,
         pts: Callable[[int], int | None] = lambda i: 40 * i,
         options: dict | None = None, audio: str | None = None, setup: Callable | None = None,
         packet: Callable | None = None, rate: int = 25, subtitles: bool = False, tb: Fraction = MS) -> Path:
    """``n`` frames of ``codec`` at ``pts(i)`` (ticks of ``tb``: ms); ``audio``: an audio codec for a sine
    track; ``packet(p, i)`` may rewrite each video packet; ``setup(cc)`` the encoder."""
    c = av.open(str(path), "w", format=fmt)
    v = c.add_stream(codec, rate=rate, options=options or {})
    v.width, v.height, v.pix_fmt = size[0], size[1], pix_fmt
    v.time_base = v.codec_context.time_base = tb
    if setup:
        setup(v.codec_context)
    a = c.add_stream(audio, rate=48000) if audio else None
    if a is not None:
        a.layout = "mono"
    s = c.add_stream("subrip") if subtitles else None
    if s is not None:
        s.codec_context.subtitle_header = ASS_HEADER  # the encoder will not open without one
    count = 0
    for i in range(n):
        f = av.VideoFrame.from_ndarray(picture(*size, i), format="rgb24").reformat(format=pix_fmt)
        f.pts, f.time_base = pts(i), tb
        for p in v.encode(f):
            c.mux(packet(p, count) if packet else p)
            count += 1
    for p in v.encode():
        c.mux(packet(p, count) if packet else p)
        count += 1
    if a is not None:
        _sine(c, a, n * 0.04)
    if s is not None:
        _subtitle(c, s)
    c.close()
    return path


def _sine(c: av.container.OutputContainer, a: av.AudioStream, seconds: float) -> None:
    size = a.codec_context.frame_size or 960
    t = np.arange(int(seconds * 48000)) / 48000
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for k in range(0, len(samples) - size + 1, size):
        f = av.AudioFrame.from_ndarray(samples[None, k:k + size], format="flt", layout="mono")
        f.sample_rate, f.pts = 48000, k
        for p in a.encode(f):
            c.mux(p)
    for p in a.encode():
        c.mux(p)


def _subtitle(c: av.container.OutputContainer, s: av.stream.Stream) -> None:
    p = av.Packet(b"rain")
    p.pts = p.dts = 0
    p.duration, p.time_base, p.stream = 200, MS, s
    c.mux(p)


def damaged(src: Path, path: Path, how: Callable[[bytearray], bytes]) -> Path:
    path.write_bytes(how(bytearray(src.read_bytes())))
    return path


def segments(path: Path, sizes: list[tuple[int, int]], n: int = 8, reset: bool = False) -> Path:
    """One MPEG-TS video stream through several encoders (a size change, or a timestamp
    reset where ``reset``: files joined as ``cat a.ts b.ts`` does)."""
    if reset:
        parts = [segments(path.with_name(f"{path.stem}-{i}.ts"), [size], n) for i, size in enumerate(sizes)]
        path.write_bytes(b"".join(p.read_bytes() for p in parts))
        return path
    c = av.open(str(path), "w", format="mpegts")
    v = c.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = sizes[0][0], sizes[0][1], "yuv420p"
    k = 0
    for j, (w, h) in enumerate(sizes):
        enc = v.codec_context if j == 0 else av.CodecContext.create("libx264", "w")
        if j:
            enc.width, enc.height, enc.pix_fmt, enc.time_base, enc.framerate = w, h, "yuv420p", MS, 25
        for i in range(n):
            f = av.VideoFrame.from_ndarray(picture(w, h, k), format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = 1400 + 40 * k, MS
            k += 1
            for p in [*enc.encode(f), *(enc.encode(None) if i == n - 1 else [])]:
                p.stream = v
                c.mux(p)
    c.close()
    return path


def _interlaced(cc: av.CodecContext) -> None:
    cc.field_order = 2
    cc.flags = int(cc.flags) | int(av.codec.context.Flags.interlaced_dct) | int(
        av.codec.context.Flags.interlaced_me)


def _sar(cc: av.CodecContext) -> None:
    cc.sample_aspect_ratio = Fraction(64, 45)


def _zero_ts(p: av.Packet, i: int) -> av.Packet:
    p.pts = p.dts = 0
    return p


def _colour(cc: av.CodecContext) -> None:
    cc.color_primaries = cc.color_trc = cc.colorspace = 1
    cc.color_range = 2


def _audio_only(path: Path) -> Path:
    c = av.open(str(path), "w")
    a = c.add_stream("aac", rate=48000)
    a.layout = "mono"
    _sine(c, a, 0.3)
    c.close()
    return path


def once(path: Path, make: Callable[[Path], Path]) -> Path:
    """``path``, made by ``make(path)`` unless an earlier case made it."""
    return path if path.exists() else make(path)


def base(d: Path) -> Path:
    return once(d / "base.mp4", lambda p: clip(p, 25))


def gap(d: Path) -> Path:
    return once(d / "gap.mp4", lambda p: clip(p, 20, pts=lambda i: 40 * i + (6000 if i >= 10 else 0)))


def aac(d: Path) -> Path:
    return once(d / "aac.mkv", lambda p: clip(p, 12, audio="aac"))


def mjpeg(d: Path) -> Path:
    return once(d / "mj.avi", lambda p: clip(p, 10, codec="mjpeg", pix_fmt="yuvj420p"))


def late_ts(d: Path) -> Path:
    return once(d / "late.ts", lambda p: clip(p, 25, fmt="mpegts", pts=lambda i: 1400 + 40 * i))


VFR = [0, 40, 80, 147, 180, 300, 340, 380, 447, 480]
Case = Callable[[Path], tuple[Path, Expect]]
CASES: dict[str, Case] = {
    "cfr-mp4": lambda d: (base(d), Expect(25, 1.0)),
    "vfr-mp4": lambda d: (clip(d / "vfr.mp4", pts=lambda i: VFR[i]), Expect(10, 0.52)),
    "vfr-mkv": lambda d: (clip(d / "vfr.mkv", pts=lambda i: VFR[i]), Expect(10, 0.52, output="out.mkv")),
    "gap-mp4": lambda d: (gap(d), Expect(20, 6.8)),
    "gap-to-avi": lambda d: (gap(d), Expect(20, 6.8, output="out.avi")),
    "gap-to-mkv": lambda d: (gap(d), Expect(20, 6.8, output="out.mkv")),
    "size-up-ts": lambda d: (segments(d / "up.ts", [(96, 64), (192, 128)]), Expect(16, 0.64, size=(96, 64))),
    "size-down-ts": lambda d: (segments(d / "down.ts", [(192, 128), (96, 64)]),
                               Expect(16, 0.64, size=(192, 128))),
    "ts-reset": lambda d: (segments(d / "reset.ts", [(96, 64), (96, 64)], reset=True), Expect(16, 0.64)),
    "raw-h264": lambda d: (clip(d / "raw.h264", 25, fmt="h264"), Expect(25, 1.0)),
    "mkv-zero-ts": lambda d: (clip(d / "zero.mkv", 25, options={"bf": "0"}, packet=_zero_ts),
                              Expect(25, 1.0)),
    "ts-1.4s": lambda d: (late_ts(d), Expect(25, 1.0)),
    "1fps": lambda d: (clip(d / "one.mp4", 4, pts=lambda i: 1000 * i, rate=1), Expect(4, 4.0)),
    "240fps": lambda d: (clip(d / "fast.mkv", 48, pts=lambda i: round(i * 1000 / 240), rate=240),
                         Expect(48, 0.2)),
    "odd-size": lambda d: (clip(d / "odd.mkv", 6, (95, 63), pix_fmt="yuv444p"),
                           Expect(6, 0.24, size=(95, 63))),
    "2x2": lambda d: (clip(d / "tiny.mkv", 6, (2, 2), pix_fmt="yuv444p"), Expect(6, 0.24, size=(2, 2))),
    "hevc-10bit": lambda d: (clip(d / "hevc.mkv", 8, codec="libx265", pix_fmt="yuv420p10le",
                                  options={"x265-params": "log-level=error"}), Expect(8, 0.32)),
    "422": lambda d: (clip(d / "422.mkv", 8, pix_fmt="yuv422p"), Expect(8, 0.32)),
    "444": lambda d: (clip(d / "444.mp4", 8, pix_fmt="yuv444p"), Expect(8, 0.32)),
    "mjpeg-avi": lambda d: (mjpeg(d), Expect(10, 0.4)),
    "vp9-opus-webm": lambda d: (clip(d / "v.webm", 10, codec="libvpx-vp9", audio="libopus"),
                                Expect(10, 0.4, output="out.webm")),
    "mpeg2-ts": lambda d: (clip(d / "m2.ts", 10, codec="mpeg2video", fmt="mpegts", pts=lambda i: i + 35,
                                tb=Fraction(1, 25)),
                           Expect(10, 0.4, output="out.ts")),
    "ffv1": lambda d: (clip(d / "f.mkv", 6, codec="ffv1"), Expect(6, 0.24, output="out.mkv")),
    "prores-mov": lambda d: (clip(d / "p.mov", 6, codec="prores_ks", pix_fmt="yuv422p10le"),
                             Expect(6, 0.24, output="out.mov")),
    "alpha": lambda d: (clip(d / "alpha.mkv", 6, codec="ffv1", pix_fmt="yuva420p"),
                        Expect(6, 0.24, warns=("alpha",))),
    "bframes-8": lambda d: (clip(d / "bf.mp4", 25, options={"bf": "8"}), Expect(25, 1.0)),
    "all-intra": lambda d: (clip(d / "intra.mp4", 12, options={"g": "1"}), Expect(12, 0.48)),
    "aac-mkv": lambda d: (aac(d), Expect(12, 0.48, output="out.mkv")),
    "aac-to-webm": lambda d: (aac(d), Expect(12, 0.48, output="out.webm")),
    "aac-to-ts": lambda d: (aac(d), Expect(12, 0.48, output="out.ts")),
    "aac-to-avi": lambda d: (aac(d), Expect(12, 0.48, output="out.avi")),
    "subtitles": lambda d: (clip(d / "sub.mkv", 10, subtitles=True), Expect(10, 0.4, output="out.mkv")),
    "interlaced": lambda d: (clip(d / "il.mp4", 10, setup=_interlaced),
                             Expect(10, 0.4, tags={"field_order": 2})),
    "sar-64-45": lambda d: (clip(d / "sar.mp4", 10, setup=_sar),
                            Expect(10, 0.4, tags={"sar": Fraction(64, 45)})),
    "bt709-full": lambda d: (clip(d / "709.mkv", 6, setup=_colour), Expect(6, 0.24, tags={"range": 2})),
    "colon-name": lambda d: (clip(d / "file:x.mp4", 7), Expect(7, 0.28)),
    "ss-cut-ts": lambda d: (late_ts(d), Expect(10, 0.4, args=("--ss", "0.4", "-t", "0.4"))),
    "start-frames": lambda d: (base(d), Expect(5, 0.2, args=("--start", "5", "--max-frames", "5"))),
    "ss-past-end": lambda d: (base(d), Expect(error=("--ss",), args=("--ss", "99"))),
    "truncated-half": lambda d: (damaged(mjpeg(d), d / "half.avi", lambda b: bytes(b[: len(b) // 2])),
                                 Expect(3, at_least=True)),
    "payload-flip": lambda d: (damaged(mjpeg(d), d / "flip.avi", _flip_middle), Expect(6, at_least=True)),
    "header-only": lambda d: (damaged(base(d), d / "head.mp4", lambda b: bytes(b[:100])),
                              Expect(error=("head.mp4",))),
    "random-bytes": lambda d: (damaged(base(d), d / "noise.mp4", lambda b: os.urandom(4000)),
                               Expect(error=("noise.mp4",))),
    "empty-file": lambda d: (damaged(base(d), d / "empty.mkv", lambda b: b""), Expect(error=("empty.mkv",))),
    "audio-only": lambda d: (_audio_only(d / "sound.m4a"), Expect(error=("no video stream",))),
}


def _flip_middle(b: bytearray) -> bytes:
    mid = len(b) // 2
    b[mid:mid + 300] = bytes(x ^ 0x5A for x in b[mid:mid + 300])
    return bytes(b)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "corpus")
    out.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        path, expect = case(out)
        print(f"{name:<16} {path.name:<14} {expect}")
