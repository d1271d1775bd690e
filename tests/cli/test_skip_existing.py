"""Issue 27: a single file is a batch of one. ``--skip-existing`` skips a complete output
and redoes a shorter one, the same way for one file, several files and a folder."""

from __future__ import annotations

from pathlib import Path

import av
from test_derain_cli import cli


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_one_file_is_skipped_when_complete_and_redone_when_shorter(make_clip, use_tiny_model, tmp_path):
    src = make_clip("a.mp4", frames=12)
    out = tmp_path / "a.derained.mp4"
    assert cli("derain", src, "--no-smooth").exit_code == 0 and frames_in(out) == 12
    before = stamp(out)
    result = cli("derain", src, "--skip-existing", "--no-smooth")
    assert result.exit_code == 0, result.output
    assert stamp(out) == before  # complete: left as it was
    make_clip("a.derained.mp4", frames=4)  # an interrupted run's output: shorter than its input
    result = cli("derain", src, "--skip-existing", "--no-smooth")
    assert result.exit_code == 0, result.output
    assert frames_in(out) == 12  # redone, without --overwrite
    assert cli("derain", src, "--no-smooth").exit_code == 1  # without --skip-existing: refused


def test_several_files_and_a_folder_follow_the_same_rule(make_clip, use_tiny_model, tmp_path):
    a, b = make_clip("a.mp4", frames=12), make_clip("b.mp4", frames=12)
    outs = tmp_path / "outs"
    assert cli("derain", a, b, "-o", outs, "--no-smooth").exit_code == 0
    before = stamp(outs / "a.mp4")
    make_clip("outs/b.mp4", frames=4)
    result = cli("derain", a, b, "-o", outs, "--skip-existing", "--no-smooth")
    assert result.exit_code == 0, result.output
    assert "1 done, 1 skipped" in result.output
    assert stamp(outs / "a.mp4") == before and frames_in(outs / "b.mp4") == 12

    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("c.mp4", "d.mp4"):
        make_clip(f"clips/{name}", frames=12)
    assert cli("derain", folder, "--no-smooth").exit_code == 0
    done = tmp_path / "clips_derained"
    before = stamp(done / "c.mp4")
    make_clip("clips_derained/d.mp4", frames=4)
    result = cli("derain", folder, "--skip-existing", "--no-smooth")
    assert result.exit_code == 0, result.output
    assert stamp(done / "c.mp4") == before and frames_in(done / "d.mp4") == 12


def test_one_file_says_its_backend_once(make_clip, use_tiny_model, tmp_path):
    """A single file is a batch of one: the batch opens the backend and names it; derain,
    handed that backend, does not name it again."""
    src = make_clip("a.mp4", frames=6)
    result = cli("derain", src, "--backend", "onnxruntime")
    assert result.exit_code == 0, result.output
    assert result.output.count(" on onnxruntime (") == 1, result.output


def test_a_job_is_checked_once(make_clip, use_tiny_model, tmp_path, monkeypatch):
    """The batch's runner checks a job before the model loads and derains it without
    checking (probing the input) again."""
    import stream_derain.derain as derain_module

    probes = []
    real = derain_module.probe_video
    monkeypatch.setattr(derain_module, "probe_video", lambda p: probes.append(p) or real(p))
    src = make_clip("a.mp4", frames=6)
    result = cli("derain", src, "--backend", "onnxruntime")
    assert result.exit_code == 0, result.output
    assert probes == [src]
