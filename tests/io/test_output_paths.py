"""Issue 30, items 6-8 and 10 at the library level: temporary names that fit, the
exclusive final link, stale temporary files, names that are paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from stream_derain.errors import OutputError
from stream_derain.io.paths import (
    _partial_pid,
    atomic_output,
    av_name,
    check_name,
    name_max,
    partial_path,
    remove_stale_partials,
)


def test_the_temporary_name_of_a_long_output_fits(tmp_path):
    limit = name_max(tmp_path)
    for stem in ("x", "x" * 200, "x" * (limit - 4), "é" * ((limit - 4) // 2)):  # é: 2 bytes in UTF-8
        out = tmp_path / (stem + ".mp4")
        tmp = partial_path(out)
        assert len(os.fsencode(tmp.name)) <= limit and tmp.suffix == ".mp4" and tmp.name.startswith(".")
        assert _partial_pid(out, tmp.name) == os.getpid()
    a, b = tmp_path / ("a" * 240 + "1.mp4"), tmp_path / ("a" * 240 + "2.mp4")
    assert partial_path(a) != partial_path(b)  # shortened names keep a hash of the whole name
    assert _partial_pid(b, partial_path(a).name) is None


def test_a_name_longer_than_the_filesystem_holds_is_an_output_error(tmp_path):
    check_name(tmp_path / ("x" * 200 + ".mp4"))
    with pytest.raises(OutputError, match="too long"):
        check_name(tmp_path / ("x" * 300 + ".mp4"))


def test_the_final_link_never_replaces_a_file_that_appeared(tmp_path):
    out = tmp_path / "out.bin"
    with pytest.raises(OutputError, match="created by something else"):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"ours")
            out.write_bytes(b"theirs")
    assert out.read_bytes() == b"theirs" and not list(tmp_path.glob(".*partial*"))
    with atomic_output(out, overwrite=True) as tmp:  # --overwrite: replace whatever is there
        tmp.write_bytes(b"ours")
    assert out.read_bytes() == b"ours"
    with atomic_output(out) as tmp:  # there at the start (the caller allowed it): replaced
        tmp.write_bytes(b"again")
    assert out.read_bytes() == b"again"
    with pytest.raises(OutputError):
        with atomic_output(out, overwrite=False) as tmp:
            tmp.write_bytes(b"no")
    assert out.read_bytes() == b"again"


def test_stale_temporary_files_of_dead_runs_are_removed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out = tmp_path / ("long" * 60 + ".mkv")
    dead, alive = partial_path(out, proc.pid), partial_path(out, os.getppid())
    dead.write_bytes(b"x")
    alive.write_bytes(b"x")
    assert remove_stale_partials(out) == [dead]
    assert not dead.exists() and alive.exists()


def test_names_are_paths_not_protocols(make_clip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_clip("x.mp4", frames=5, audio=False)
    make_clip("file:x.mp4", frames=3, audio=False)
    with av.open(av_name(Path("file:x.mp4"))) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3
