"""The one list of stream URL schemes, as the front door, the reader and live/ see it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_derain.derain import check_input
from stream_derain.errors import InputError
from stream_derain.io.paths import STREAM_SCHEMES, has_stream_scheme, is_url
from stream_derain.live.source import SourceConfig


@pytest.mark.parametrize("scheme", STREAM_SCHEMES)
def test_every_scheme_is_a_stream_everywhere(scheme: str) -> None:
    url = f"{scheme.upper()}://host:1234/cam"
    assert is_url(url) and has_stream_scheme(url)
    assert is_url(str(Path(url)))  # Path folds '//' to '/'
    assert SourceConfig(url).is_network
    with pytest.raises(InputError, match="is a stream"):
        check_input(url)


@pytest.mark.parametrize("scheme", ["rtsps", "srt"])
def test_reader_opens_secure_and_srt_urls(scheme: str) -> None:
    # these were missing from the reader's list: it looked for them on disk
    assert has_stream_scheme(f"{scheme}://127.0.0.1:1/x")


@pytest.mark.parametrize("text", ["clip.mp4", "/dev/video0", "rtspclip.mp4", "a/http/x.mp4", "file:x.mp4"])
def test_files_are_not_streams(text: str) -> None:
    assert not is_url(text) and not has_stream_scheme(text)
    assert not SourceConfig(text).is_network
