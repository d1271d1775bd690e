"""Issue 13, point 15 (and 2, 8): several inputs in one call, per-file results, a
summary, non-zero exit when a file failed, --skip-existing to resume."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_derain_cli import cli, frames_in, one_line_error, partials

from stream_derain.derain import DerainConfig
from stream_derain.engine_spec import EngineSpec
from stream_derain.jobs import Job, JobResult, plan_jobs, run_jobs


def write_png(path: Path, seed: int = 0, shape=(40, 56, 3)) -> Path:
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, shape, np.uint8))
    return path


@pytest.fixture
def inputs(make_clip, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    a = make_clip("a.mp4", frames=4, audio=False)
    b = make_clip("b.mkv", frames=3, audio=False)
    make_clip("clips/c.avi", frames=3, audio=False)
    write_png(folder / "d.png")
    write_png(folder / ".hidden.png")
    (folder / "notes.txt").write_text("not media")
    return a, b, folder


def test_several_inputs_into_an_output_folder(inputs, use_tiny_model, tmp_path):
    a, b, folder = inputs
    out = tmp_path / "out"
    result = cli("derain", a, b, folder, "-o", out, "--no-smooth")
    assert result.exit_code == 0, result.output
    assert frames_in(out / "a.mp4") == 4 and frames_in(out / "b.mkv") == 3
    assert frames_in(out / "clips" / "c.mp4") == 3 and (out / "clips" / "d.png").is_file()
    assert not (out / "clips" / ".hidden.png").exists()
    assert "derain: 4 done" in result.output and "hidden" in result.output
    # a line per video; images that went well stay quiet (issue 28: a folder of images
    # printed two lines each); nothing failed, so no table
    done = [line for line in result.output.splitlines() if line.startswith("done")]
    assert len(done) == 3 and not any("d.png" in line for line in done)
    assert "not finished" not in result.output


def test_a_failing_file_does_not_stop_the_batch(inputs, use_tiny_model, tmp_path):
    a, b, folder = inputs
    bad = folder / "bad.mp4"
    bad.write_bytes(os.urandom(3000))
    broken = write_png(folder / "broken.png")
    broken.write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    result = cli("derain", folder, a, "-o", out, "--no-smooth")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "2 failed" in result.output
    assert frames_in(out / "a.mp4") == 4 and (out / "clips" / "d.png").is_file()
    assert not (out / "clips" / "bad.mp4").exists() and not partials(out / "clips")
    # resume: only the failed ones run again (and fail again)
    again = cli("derain", folder, a, "-o", out, "--no-smooth", "--skip-existing")
    assert again.exit_code == 1 and "3 skipped" in again.output and "2 failed" in again.output


def test_skip_existing_redoes_an_incomplete_output(make_clip, use_tiny_model, tmp_path):
    a = make_clip("a.mp4", frames=12, audio=False)
    b = make_clip("b.mp4", frames=4, audio=False)
    out = tmp_path / "out"
    assert cli("derain", a, b, "-o", out, "--no-smooth").exit_code == 0
    short = cli("derain", a, "-o", out / "a.mp4", "--no-smooth", "--max-frames", "5", "-y")
    assert short.exit_code == 0 and frames_in(out / "a.mp4") == 5  # as an interrupted run leaves it
    result = cli("derain", a, b, "-o", out, "--no-smooth", "--skip-existing")
    assert result.exit_code == 0, result.output
    assert frames_in(out / "a.mp4") == 12 and "1 done, 1 skipped" in result.output


def test_existing_outputs_fail_per_file_without_overwrite(make_clip, use_tiny_model, tmp_path):
    a = make_clip("a.mp4", frames=3, audio=False)
    b = make_clip("b.mp4", frames=3, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"older")
    result = cli("derain", a, b, "-o", out, "--no-smooth")
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (out / "a.mp4").read_bytes() == b"older" and frames_in(out / "b.mp4") == 3


def test_two_inputs_writing_one_file_is_refused(make_clip, use_tiny_model, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    one = make_clip("x/clip.mp4", frames=2, audio=False)
    two = make_clip("y/clip.mp4", frames=2, audio=False)
    one_line_error(cli("derain", one, two, "-o", tmp_path / "out"), "would both write")
    assert not (tmp_path / "out").exists()


def test_folder_input_with_a_file_as_output_is_an_error(inputs, use_tiny_model, tmp_path):
    _, _, folder = inputs
    (tmp_path / "file.mp4").write_bytes(b"x")
    one_line_error(cli("derain", folder, "-o", tmp_path / "file.mp4"), "is a file")


def test_all_failing_leaves_no_empty_output_folder(use_tiny_model, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"junk")
    result = cli("derain", folder, "-o", tmp_path / "out" / "deeper")
    assert result.exit_code == 1 and not (tmp_path / "out").exists()


def test_plan_without_output_writes_beside_each_input(make_clip, tmp_path):
    a = make_clip("a.mp4", frames=2, audio=False)
    folder = tmp_path / "imgs"
    folder.mkdir()
    write_png(folder / "p.png")
    jobs = plan_jobs([a, folder])
    assert [(j.input.name, j.output) for j in jobs] == [
        ("a.mp4", tmp_path / "a.derained.mp4"), ("p.png", tmp_path / "imgs_derained" / "p.png")]


def test_run_jobs_takes_another_executor(tmp_path):
    """What the Ray helper builds on: the plan runs with any ``run_one``."""
    jobs = [Job(tmp_path / "a.mp4", tmp_path / "o" / "a.mp4"),
            Job(tmp_path / "b.mp4", tmp_path / "o" / "b.mp4", skip="output exists")]
    seen = []

    def run_one(job, cfg):
        seen.append((cfg.input, cfg.output, cfg.engine.backend))
        return JobResult(job, "done", frames=7)

    batch = run_jobs(jobs, DerainConfig(input=Path(), engine=EngineSpec(backend="onnxruntime")),
                     run_one=run_one)
    assert seen == [(jobs[0].input, jobs[0].output, "onnxruntime")]
    assert batch.summary() == "1 done, 1 skipped" and batch.failed == 0


def test_output_with_a_trailing_slash_is_a_folder(make_clip, use_tiny_model, tmp_path):
    a = make_clip("a.mp4", frames=3, audio=False)
    result = cli("derain", a, "-o", f"{tmp_path / 'new'}/", "--no-smooth")
    assert result.exit_code == 0, result.output
    assert frames_in(tmp_path / "new" / "a.mp4") == 3


def test_unreadable_file_is_skipped_with_a_count(use_tiny_model, tmp_path, monkeypatch):
    """Point 8 (run as root, permissions cannot make a file unreadable: os.access is
    patched for one file)."""
    import stream_derain.jobs as jobs

    folder = tmp_path / "imgs"
    folder.mkdir()
    write_png(folder / "a.png")
    locked = write_png(folder / "b.png", seed=1)
    real = os.access
    monkeypatch.setattr(jobs.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    result = cli("derain", folder, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "1 done, 1 skipped" in result.output and "not readable" in result.output
    assert (tmp_path / "out" / "a.png").is_file() and not (tmp_path / "out" / "b.png").exists()
