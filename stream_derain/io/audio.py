"""Audio the output container cannot hold as it is (AAC into WebM): decoded and
encoded again, to Opus where the container takes it (WebM, Ogg, MKV), else to the
container's default audio codec, as ffmpeg does when it has to."""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import av

from .encode_options import container_holds

log = logging.getLogger(__name__)


def needs_transcode(container: Any, src: Any) -> bool:
    """Whether ``container`` (an output) cannot take ``src`` (an audio stream) as it is
    (:func:`~.encode_options.container_holds`: MPEG-TS holds AAC, though it names only MP2)."""
    name = src.codec_context.name if src.codec_context is not None else None
    return bool(src.type == "audio" and name and not container_holds(container, name))


class AudioTranscoder:
    """Decode the packets of one source audio stream and encode them into a new stream."""

    def __init__(self, container: Any, src: Any) -> None:
        self.src = src
        target = "libopus" if "opus" in container.supported_codecs else container.default_audio_codec
        codec = av.Codec(target, "w")
        in_rate = src.codec_context.sample_rate or 48000
        rates = codec.audio_rates or ()
        rate = in_rate if not rates or in_rate in rates else max(rates)
        self.stream = container.add_stream(target, rate=rate)
        self.stream.time_base = Fraction(1, rate)
        layout = src.codec_context.layout.name if src.codec_context.layout else "stereo"
        self.stream.layout = layout
        fmt = (codec.audio_formats or [None])[0]
        if fmt is not None:
            self.stream.format = fmt.name
        self.decoder = av.CodecContext.create(src.codec_context.name, "r")
        if src.codec_context.extradata:
            self.decoder.extradata = src.codec_context.extradata
        self.decoder.sample_rate, self.decoder.layout = src.codec_context.sample_rate, layout
        self.stream.codec_context.open()
        frame_size = self.stream.codec_context.frame_size or None
        self.resampler = av.AudioResampler(format=self.stream.format.name, layout=layout, rate=rate,
                                           frame_size=frame_size)
        log.info("transcoding %s audio (stream #%d) to %s: %s cannot hold %s", src.codec_context.name,
                 src.index, target, container.format.name, src.codec_context.name)

    def _encode(self, frames: list[Any]) -> list[av.Packet]:
        packets = []
        for frame in frames:
            for out in self.resampler.resample(frame):
                packets += self.stream.encode(out)
        return packets

    def packets(self, packet: av.Packet) -> list[av.Packet]:
        try:
            frames = self.decoder.decode(packet)
        except av.error.FFmpegError as exc:
            log.warning("skipping a corrupt audio packet: %s", exc)
            return []
        return self._encode(frames)

    def flush(self) -> list[av.Packet]:
        try:
            packets = self._encode(self.decoder.decode(None))
        except av.error.FFmpegError:
            packets = []
        return packets + self._encode([None]) + list(self.stream.encode(None))
