"""``stream-derain eval`` on videos: the flicker metric through the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from stream_derain.cli import app

runner = CliRunner()


def test_eval_video_reports_flicker_of_output_and_source(make_clip, use_tiny_model, tmp_path):
    src = make_clip("in.mp4", frames=8, audio=False)
    out = tmp_path / "out.mp4"
    assert runner.invoke(app, ["derain", str(src), "-o", str(out), "-q"]).exit_code == 0
    report = tmp_path / "flicker.json"
    result = runner.invoke(app, ["eval", str(out), "--source", str(src), "--reference", str(src),
                                 "--json", str(report)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(report.read_text())
    assert row["frames"] == 8 and row["flow_on"] == "reference"
    assert row["e_warp"] > 0 and row["e_warp_source"] > 0 and 10 < row["psnr_y"] < 100
    assert "E_warp" in result.output


def test_eval_video_with_mismatched_reference_is_an_error(make_clip, use_tiny_model, tmp_path):
    a = make_clip("a.mp4", frames=4, audio=False)
    b = make_clip("b.mp4", frames=4, size=(64, 48), audio=False)
    result = runner.invoke(app, ["eval", str(a), "--reference", str(b)])
    assert result.exit_code == 1 and result.output.startswith("Error:") and "Traceback" not in result.output


def test_eval_missing_path_is_not_found(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "not found" in result.output and "rain/" not in result.output


def test_eval_json_is_strict_and_units_are_named(make_clip, use_tiny_model, tmp_path):
    """Scoring a video against itself gives an infinite PSNR: null in JSON, not Infinity."""
    src = make_clip("in.mp4", frames=4, audio=False)
    report = tmp_path / "scores.json"
    result = runner.invoke(app, ["eval", str(src), "--reference", str(src), "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "lower is better" in result.output and "dB" in result.output

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    (row,) = json.loads(report.read_text(), parse_constant=refuse)
    assert row["psnr_y"] is None


def test_eval_plain_folders_say_they_score_flicker_only(tmp_path):
    import cv2
    import numpy as np

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.full((32, 32, 3), 40 * i, np.uint8))
    result = runner.invoke(app, ["eval", str(tmp_path / "a"), str(tmp_path / "b")])
    assert "flicker (E_warp) only" in result.output, result.output


def test_eval_pairs_line_has_units_and_rgb(tmp_path):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for sub in ("rain", "clean"):
        (tmp_path / "set" / sub).mkdir(parents=True)
    for i in range(2):
        clean = rng.integers(0, 255, (40, 48, 3), np.uint8)
        cv2.imwrite(str(tmp_path / "set" / "clean" / f"{i}.png"), clean)
        rainy = np.clip(clean.astype(int) + 30, 0, 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "set" / "rain" / f"{i}.png"), rainy)
    result = runner.invoke(app, ["eval", str(tmp_path / "set"), "--input-only"])
    assert result.exit_code == 0, result.output
    assert "PSNR-Y" in result.output and "dB" in result.output and "RGB" in result.output
