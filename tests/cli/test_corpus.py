"""Issue 30: every case of the hostile-input corpus (``corpus.py``) through the command
line: the right file (frame count, duration, size, tags) with exit 0, or one ``Error:``
line with exit 1, never a traceback, and nothing left beside the output."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from corpus import CASES, Expect
from test_derain_cli import cli, one_line_error, partials


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def span(frames: list[av.VideoFrame]) -> float:
    """First frame shown to the end of the last (+ the step before it where the container
    keeps no durations: MPEG-TS)."""
    last = frames[-1].duration or (frames[-1].pts - frames[-2].pts if len(frames) > 1 else 0)
    return float((frames[-1].pts + last - frames[0].pts) * frames[0].time_base)


def check_output(out: Path, expect: Expect) -> None:
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        cc = v.codec_context
        tags = {"field_order": cc.field_order, "sar": v.sample_aspect_ratio, "range": cc.color_range}
        frames = list(c.decode(video=0))
    if expect.at_least:
        assert len(frames) >= expect.frames
    else:
        assert len(frames) == expect.frames
    if out.suffix not in (".ts", ".avi"):  # (MPEG-TS adds its offset; AVI stores no timestamps)
        assert frames[0].pts == 0  # the output clock starts at 0
    if expect.seconds is not None:
        assert span(frames) == pytest.approx(expect.seconds, abs=2e-3)
    if expect.size is not None:
        assert {(f.width, f.height) for f in frames} == {expect.size}
    for key, value in expect.tags.items():
        assert tags[key] == value, key


@pytest.mark.parametrize("name", list(CASES))
def test_corpus_case(name, corpus_dir, use_tiny_model, tmp_path):
    src, expect = CASES[name](corpus_dir)
    out = tmp_path / expect.output
    result = cli("derain", src, "-o", out, "--no-smooth", "--preset", "ultrafast", *expect.args)
    assert "Traceback" not in result.output, result.output
    if expect.frames is None:
        one_line_error(result, *expect.error)
        assert not out.exists()
    else:
        assert result.exit_code == 0, result.output
        check_output(out, expect)
        for word in expect.warns:
            assert word in result.output
    assert not partials(tmp_path)
