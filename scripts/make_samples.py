"""Remake the bundled rainy sample clips in ``samples/``.

Each clip is a public-domain / CC0 photo shipped inside scikit-image
(``skimage.data``), filmed by a simulated camera pan/zoom and rained on by the
project's own synthesiser (:func:`stream_derain.synth.rainy_video`). Video is
H.264 (libx264, yuv420p, BT.709 limited range, 25 fps, 125 frames); audio is
synthetic stereo rain noise (AAC, 48 kHz). Everything is seeded, so a rerun gives
the same pictures and sound.

    python scripts/make_samples.py [--out samples] [--with-clean DIR]

``--with-clean DIR`` also writes the rain-free ground truth of each clip to DIR
(``<name>_clean.mp4``) for evaluation; those are not shipped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from stream_derain.synth import CameraPath, RainParams, rainy_video  # noqa: E402

log = logging.getLogger(__name__)

FPS = 25
N_FRAMES = 125  # 5 s
AUDIO_RATE = 48_000
MAX_BYTES = 5_000_000


@dataclass(frozen=True)
class Clip:
    """One sample clip: where its picture comes from and how it is rained on."""

    name: str
    source: str  # name of the skimage.data loader
    out_hw: tuple[int, int]
    params: RainParams
    camera: CameraPath
    seed: int
    crf: int = 28
    audio_gain: float = 0.25  # loudness of the rain sound


CLIPS: tuple[Clip, ...] = (
    # SpaceX launch pad at dusk (public domain): heavy slanted rain with a light veil.
    Clip(
        name="rainy_launchpad_720p",
        source="rocket",
        out_hw=(720, 1280),
        params=RainParams(layers=3, density=0.0022, length=46.0, width=2.2, angle=12.0,
                          brightness=0.5, haze=0.12, screen_blend=True),
        camera=CameraPath(start=(0.42, 0.55), end=(0.56, 0.5), zoom=(1.05, 1.3)),
        seed=20250101,
        crf=31,
    ),
    # Espresso on a wooden cafe table (CC0): moderate, nearly vertical rain.
    Clip(
        name="rainy_cafe_table_360p",
        source="coffee",
        out_hw=(360, 640),
        params=RainParams(layers=2, density=0.0025, length=24.0, width=1.4, angle=-6.0,
                          brightness=0.42, haze=0.08, screen_blend=False),
        camera=CameraPath(start=(0.45, 0.45), end=(0.55, 0.52), zoom=(1.0, 1.2)),
        seed=20250102,
        crf=27,
        audio_gain=0.18,
    ),
)


def load_source(name: str, out_hw: tuple[int, int]) -> np.ndarray:
    """A skimage.data photo as float32 RGB in [0, 1], upscaled (Lanczos) so that it
    covers ``out_hw`` at its own aspect ratio; the camera crop resamples it again."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"skimage.data.{name} is not an RGB image: shape {img.shape}")
    h, w = img.shape[:2]
    scale = max(out_hw[0] / h, out_hw[1] / w, 1.0)
    if scale > 1.0:
        img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LANCZOS4)
    return img.astype(np.float32) / 255.0


def _shaped_noise(rng: np.random.Generator, n: int, shape: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """White noise coloured in the frequency domain by ``shape(freqs_hz)``, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / AUDIO_RATE)
    out = np.fft.irfft(spec * shape(f), n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def _drop_clicks(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Sparse drop impacts: short, exponentially decaying noise bursts at random times."""
    out = np.zeros(n)
    count = rng.poisson(rate_hz * n / AUDIO_RATE)
    for start in rng.integers(0, n, count):
        length = int(rng.uniform(0.002, 0.012) * AUDIO_RATE)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 5))
        burst *= rng.uniform(0.2, 1.0) ** 2
        end = min(start + length, n)
        out[start:end] += burst[: end - start]
    return out


def rain_audio(seconds: float, seed: int, gain: float) -> np.ndarray:
    """Stereo rain-like sound: (2, n) float32 in [-1, 1].

    A hiss (noise band-passed around 0.5-6 kHz), a low brown-noise rumble and random
    drop clicks; the channels share the rumble but have their own hiss and drops."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * AUDIO_RATE))

    def hiss(f: np.ndarray) -> np.ndarray:
        return (f / 500.0) ** 2 / (1 + (f / 500.0) ** 2) / (1 + (f / 6000.0) ** 2)

    def brown(f: np.ndarray) -> np.ndarray:
        return 1.0 / np.maximum(f, 20.0) * (f > 15.0)

    rumble = _shaped_noise(rng, n, brown)
    chans = []
    for _ in range(2):
        sig = 0.55 * _shaped_noise(rng, n, hiss) + 0.35 * rumble + 0.6 * _drop_clicks(rng, n, 180.0)
        chans.append(sig)
    audio = np.stack(chans)
    audio *= gain / (np.max(np.abs(audio)) + 1e-12) * 3.0  # peak at 3x gain before clipping
    fade = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.05 * AUDIO_RATE))
    return np.clip(audio * fade, -1.0, 1.0).astype(np.float32)


def _add_video_stream(container: av.container.OutputContainer, hw: tuple[int, int], crf: int):
    """libx264 yuv420p stream tagged BT.709 limited ('tv') range."""
    stream = container.add_stream("libx264", rate=FPS, options={"crf": str(crf), "preset": "slow"})
    stream.height, stream.width = hw
    stream.pix_fmt = "yuv420p"
    cc = stream.codec_context
    cc.color_primaries = av.video.reformatter.ColorPrimaries.BT709
    cc.color_trc = av.video.reformatter.ColorTrc.BT709
    cc.colorspace = av.video.reformatter.Colorspace.ITU709
    cc.color_range = av.video.reformatter.ColorRange.MPEG
    cc.thread_count = 2  # the machine is shared; also keeps the bitstream reproducible
    return stream


def _to_yuv(rgb: np.ndarray) -> av.VideoFrame:
    """float32 RGB [0, 1] -> yuv420p frame, BT.709 matrix, limited range, tagged."""
    u8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(u8, format="rgb24")
    rf = av.video.reformatter
    return frame.reformat(
        format="yuv420p", src_colorspace=rf.Colorspace.ITU709, dst_colorspace=rf.Colorspace.ITU709,
        src_color_range=rf.ColorRange.JPEG, dst_color_range=rf.ColorRange.MPEG,
        dst_color_trc=rf.ColorTrc.BT709, dst_color_primaries=rf.ColorPrimaries.BT709,
        interpolation=rf.Interpolation.BICUBIC | rf.Interpolation.ACCURATE_RND,
    )


def _mux_audio(container: av.container.OutputContainer, stream, audio: np.ndarray) -> None:
    """Encode (2, n) float32 audio in the encoder's frame size and mux it, then flush."""
    step = stream.codec_context.frame_size or 1024
    for start in range(0, audio.shape[1], step):
        chunk = np.ascontiguousarray(audio[:, start:start + step])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_clip(path: Path, frames: Sequence[np.ndarray], audio: np.ndarray, crf: int) -> None:
    """Encode RGB float frames (25 fps) plus stereo audio into an MP4 at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        video = _add_video_stream(container, frames[0].shape[:2], crf)
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        sound.codec_context.options = {"b": "96k"}
        for i, rgb in enumerate(frames):
            frame = _to_yuv(rgb)
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        _mux_audio(container, sound, audio)
    log.info("wrote %s (%.2f MB)", path, path.stat().st_size / 1e6)


def make_clip(clip: Clip, out_dir: Path, clean_dir: Path | None) -> Path:
    """Synthesise one clip and write it (and, when asked, its clean version)."""
    log.info("synthesising %s from skimage.data.%s at %dx%d", clip.name, clip.source, *clip.out_hw[::-1])
    src = load_source(clip.source, clip.out_hw)
    rng = np.random.default_rng(clip.seed)
    rainy, clean = rainy_video(src, N_FRAMES, clip.out_hw, rng, clip.params, clip.camera)
    audio = rain_audio(N_FRAMES / FPS, clip.seed + 1, clip.audio_gain)
    path = out_dir / f"{clip.name}.mp4"
    write_clip(path, rainy, audio, clip.crf)
    if path.stat().st_size >= MAX_BYTES:
        log.warning("%s is %d bytes, over the 5 MB budget: raise its crf", path, path.stat().st_size)
    if clean_dir is not None:
        write_clip(clean_dir / f"{clip.name}_clean.mp4", clean, audio, clip.crf)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "samples",
                        help="folder for the rainy clips (default: the repo's samples/)")
    parser.add_argument("--with-clean", type=Path, default=None, metavar="DIR",
                        help="also write the clean (ground-truth) clips to DIR")
    parser.add_argument("--only", nargs="*", default=None, help="names of clips to make (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - {clip.name for clip in CLIPS}
    if unknown:
        known = ", ".join(clip.name for clip in CLIPS)
        parser.error(f"unknown clip(s): {', '.join(sorted(unknown))}; known: {known}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(1)  # modest CPU use on a shared machine
    for clip in CLIPS:
        if args.only is None or clip.name in args.only:
            make_clip(clip, args.out, args.with_clean)


if __name__ == "__main__":
    main()
