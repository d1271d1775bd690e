"""Issue 13, point 17: ``live`` takes the encoder options of ``derain`` for --push and
--record (--codec, --crf, --preset, --bitrate), --smooth-strength and --hwaccel."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from stream_derain.cli import app
from stream_derain.engine_spec import EngineSpec
from stream_derain.errors import ConfigError
from stream_derain.io.encode_options import EncodeOptions
from stream_derain.io.video import FrameItem
from stream_derain.live import LiveConfig, SegmentRecorder, SourceConfig


def test_recorder_uses_the_given_encoder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rec = SegmentRecorder(tmp_path, segment_s=60.0, fps=25,
                          encode=EncodeOptions(codec="libx265", crf=30, preset="ultrafast"))
    for i in range(8):
        rec.write(FrameItem(i, None, None, rng.integers(0, 255, (48, 64, 3), np.uint8), captured=10 + i / 25))
    rec.close()
    (path,) = rec.files
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert sum(1 for _ in c.decode(video=0)) == 8


def test_live_config_checks_the_encoder_options() -> None:
    with pytest.raises(ConfigError, match="0-51"):
        LiveConfig(SourceConfig("rtsp://x/y"), preview_port=0, encode=EncodeOptions(crf=99))
    with pytest.raises(ConfigError, match="batch"):
        LiveConfig(SourceConfig("rtsp://x/y"), engine=EngineSpec(batch=0), preview_port=0)


@pytest.mark.parametrize("args,words", [(["--crf", "99"], "0-51"), (["--preset", "warpspeed"], "warpspeed"),
                                        (["--hwaccel", "gpu"], "--hwaccel"),
                                        (["--smooth-strength", "2"], "smooth-strength"),
                                        (["--batch", "0"], "--batch")])
def test_live_cli_option_errors(args, words) -> None:
    result = CliRunner().invoke(app, ["live", "rtsp://127.0.0.1:9/x", "--preview-port", "0", *args])
    assert result.exit_code in (1, 2) and "Traceback" not in result.output and words in result.output
