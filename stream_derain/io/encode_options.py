"""Encoder options, checked before any frame is decoded: the encoder exists and is a
video encoder, crf and preset are in range for it, the pixel format is one it takes
and can hold the frame size, and the encoder opens on this machine."""

from __future__ import annotations

import difflib
import io
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av

from ..errors import ConfigError

log = logging.getLogger(__name__)

X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
CRF_RANGE = {"libx264": (0, 51), "libx264rgb": (0, 51), "libx265": (0, 51), "libvpx": (4, 63),
             "libvpx-vp9": (0, 63), "libaom-av1": (0, 63), "libsvtav1": (1, 63)}
PRESETS: dict[str, tuple[str, ...]] = {"libx264": X26X_PRESETS, "libx264rgb": X26X_PRESETS,
                                       "libx265": X26X_PRESETS,
                                       "libsvtav1": tuple(str(i) for i in range(-1, 14))}
COMMON_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "libaom-av1", "ffv1", "mpeg4", "mjpeg",
                   "h264_nvenc", "hevc_nvenc")
# Software x264/x265 without a preset run at veryfast, not at their own medium (issue 14,
# item 4): on the 360p sample x264 alone took 33-35 ms of CPU per frame at medium and 12 ms
# at veryfast, for a file 28% larger at crf 18; with the faster engine medium was a third
# of the pipeline's CPU. --preset / EncodeOptions.preset override it; other encoders
# (NVENC, VP9, AV1) keep their own default.
DEFAULT_PRESETS = {"libx264": "veryfast", "libx264rgb": "veryfast", "libx265": "veryfast"}
ALIASES = {"x264": "libx264", "x265": "libx265", "h265": "libx265", "hevc": "libx265", "vp9": "libvpx-vp9",
           "av1": "libsvtav1", "svtav1": "libsvtav1"}


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "libx264"
    crf: int | None = 18  # used by the encoders in CRF_RANGE; None: the encoder's default
    preset: str | None = None  # None: DEFAULT_PRESETS (x264/x265: veryfast), else the encoder's default
    pix_fmt: str | None = None  # None: keep the source's when the encoder takes it
    bitrate: int | None = None  # bits per second; with crf, x264/x265 treat it as a cap
    threads: int = 0  # encoder threads; 0: the encoder's own choice (x264/x265: from the cores)
    container_options: dict[str, str] = field(default_factory=dict)


def _encoder(name: str) -> av.Codec:
    try:
        codec = av.Codec(name, "w")
    except ValueError:
        hint = ALIASES.get(name.lower()) or next(iter(difflib.get_close_matches(name, COMMON_ENCODERS, 1)),
                                                 None)
        did = f" (did you mean {hint}?)" if hint else ""
        raise ConfigError(f"unknown encoder {name!r}{did}; e.g. {', '.join(COMMON_ENCODERS[:5])}") from None
    if codec.type != "video":
        raise ConfigError(f"{name} is an {codec.type} encoder, not a video one; e.g. libx264, libx265")
    return codec


def check_options(opts: EncodeOptions) -> av.Codec:
    """Checks that need no frame size; returns the encoder. Raises ConfigError."""
    codec = _encoder(opts.codec)
    lo_hi = CRF_RANGE.get(codec.name)
    if opts.crf is not None and lo_hi and not lo_hi[0] <= opts.crf <= lo_hi[1]:
        raise ConfigError(f"--crf {opts.crf} is out of range for {codec.name} ({lo_hi[0]}-{lo_hi[1]})")
    presets = PRESETS.get(codec.name)
    if opts.preset is not None and presets and opts.preset not in presets:
        raise ConfigError(f"unknown preset {opts.preset!r} for {codec.name}: {', '.join(presets)}")
    if opts.bitrate is not None and opts.bitrate <= 0:
        raise ConfigError(f"bitrate must be positive, got {opts.bitrate}")
    if opts.threads < 0:
        raise ConfigError(f"encoder threads must be >= 0, got {opts.threads}")
    if opts.pix_fmt is not None:
        formats = [f.name for f in (codec.video_formats or [])]
        try:
            av.VideoFormat(opts.pix_fmt)
        except ValueError:
            raise ConfigError(f"unknown pixel format {opts.pix_fmt!r}") from None
        if formats and opts.pix_fmt not in formats:
            raise ConfigError(f"{codec.name} cannot encode {opts.pix_fmt}; it takes: {', '.join(formats)}")
    return codec


def subsampled(pix_fmt: str) -> bool:
    """Whether ``pix_fmt`` stores chroma at less than full resolution (4:2:0, 4:2:2)."""
    comps = av.VideoFormat(pix_fmt, 2, 2).components
    return len(comps) >= 3 and any(c.width < 2 or c.height < 2 for c in comps[1:3])


def choose_pix_fmt(codec: av.Codec, width: int, height: int, source: str, wanted: str | None) -> str:
    """The output pixel format: ``wanted``, else the source's when the encoder takes it
    (4:4:4 for an odd frame size, which 4:2:0 cannot hold)."""
    odd = width % 2 or height % 2
    if wanted:
        if odd and subsampled(wanted):
            raise ConfigError(f"{wanted} cannot hold the odd frame size {width}x{height}: use yuv444p, "
                              "or leave --pix-fmt out")
        return wanted
    formats = [f.name for f in (codec.video_formats or [])]
    src = source if source in formats else "yuv420p"
    if odd and subsampled(src) and "yuv444p" in formats:
        log.info("odd frame size %dx%d: encoding 4:4:4 so the size is kept", width, height)
        return "yuv444p"
    return src if not formats or src in formats else formats[0]


def preset_of(codec: str, opts: EncodeOptions) -> str | None:
    """The preset encoder ``codec`` runs at: ``opts.preset``, else :data:`DEFAULT_PRESETS`'s
    (None: the encoder's own default)."""
    return opts.preset or DEFAULT_PRESETS.get(codec)


def codec_options(codec: str, opts: EncodeOptions) -> dict[str, str]:
    """The encoder options (``crf``, ``preset``, quiet x265) of ``opts`` for encoder ``codec``."""
    options = {}
    if opts.crf is not None and codec in CRF_RANGE:
        options["crf"] = str(opts.crf)
    preset = preset_of(codec, opts)
    if preset and codec in PRESETS:
        options["preset"] = preset
    if codec == "libx265" and not log.isEnabledFor(logging.DEBUG):
        options["x265-params"] = "log-level=error"  # x265 prints its [info] lines itself, on stderr
    return options


def _codec_id(name: str) -> int | None:
    for mode in ("r", "w"):
        try:
            return av.Codec(name, mode).id
        except (ValueError, av.error.FFmpegError):
            continue
    return None


def container_holds(container: Any, codec: str) -> bool:
    """Whether the output ``container`` can hold ``codec`` (a codec, encoder or decoder
    name). A format that keeps no list of its own names only its default codecs
    (MPEG-TS: MPEG-2 video and MP2, though it holds H.264 and AAC): anything goes there."""
    names = getattr(container, "supported_codecs", None)
    if not names:
        return True
    defaults = {_codec_id(n) for n in (container.default_video_codec, container.default_audio_codec,
                                       container.default_subtitle_codec) if n and n != "none"}
    ids = {_codec_id(n) for n in names}
    return ids <= defaults or codec in names or _codec_id(codec) in ids


def own_encoder(container: Any, codec: str, name: str) -> str | None:
    """None when ``container`` holds ``codec``; else the name of the format's own video
    encoder (WebM: VP9); ConfigError when it has none that runs here."""
    if container_holds(container, codec):
        return None
    try:
        return av.Codec(container.default_video_codec, "w").name
    except (ValueError, av.error.FFmpegError):
        raise ConfigError(f"{name}: {container.format.name} cannot hold {codec} video; choose another "
                          "--codec or container (.mkv holds nearly every codec)") from None


def encoder_for(container: Any, opts: EncodeOptions, name: str) -> EncodeOptions:
    """``opts`` with an encoder ``container`` can hold: the asked one, else the format's
    own video codec (:func:`own_encoder`), with a warning."""
    fallback = own_encoder(container, opts.codec, name)
    if fallback is None:
        return opts
    log.warning("%s cannot hold %s video: encoding %s instead (give --codec to choose; .mkv or .mp4 "
                "keep %s)", container.format.name, opts.codec, fallback, opts.codec)
    return replace(opts, codec=fallback, preset=None, pix_fmt=None)


def unknown_extension(path: Path) -> str:
    """What to say of an output whose extension names no container format."""
    return (f"cannot write {path}: no container format for the extension {path.suffix or '(none)'!r}; "
            "use .mp4, .mkv, .mov or .webm")


def check_container(path: Path, opts: EncodeOptions) -> None:
    """Ask the muxer before any work: ConfigError unless the extension of ``path`` names
    a video container (the writer's own guess, made on an in-memory file) that holds
    ``opts.codec`` or a video encoder of its own (:func:`own_encoder`)."""
    probe = io.BytesIO()
    probe.name = path.name
    try:
        container = av.open(probe, "w")
    except ValueError:
        raise ConfigError(unknown_extension(path)) from None
    try:
        if container.format.name == "image2":
            raise ConfigError(f"cannot write {path}: the output of a video must be a video file "
                              "(.mp4, .mkv, .mov or .webm), not an image")
        own_encoder(container, opts.codec, str(path))
    finally:
        container.close()


def open_encoder(stream: Any) -> None:
    """Open the encoder now, so that one that cannot run here (NVENC without an NVIDIA
    GPU, an unsupported size) fails before decoding starts, with a clear message."""
    try:
        stream.codec_context.open()
    except av.error.FFmpegError as exc:
        name = stream.codec_context.name
        why = "it needs an NVIDIA GPU and driver" if "nvenc" in name else \
            "the encoder rejected the settings or is not usable on this machine"
        raise ConfigError(f"cannot open the {name} encoder: {why} ({exc.strerror or exc}); "
                          "libx264 runs everywhere") from None
