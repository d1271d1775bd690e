"""The bench report: schema, failed backends kept, efficiency, Markdown, chart, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stream_derain.bench import BenchConfig, run_bench, validate_report
from stream_derain.engine_spec import EngineSpec
from stream_derain.errors import BackendError

SMALL = dict(resolutions=((64, 48),), batches=(1,), warmup=1, iters=2, frames=6)


def _broken_factory(name: str, model: Any, precision: str, threads: int, options: Any = ()) -> Any:
    from stream_derain.backends import create_backend

    if name == "broken":
        raise BackendError("broken is not installed here")
    return create_backend(name, model, precision, threads)


@pytest.fixture(scope="module")
def report(tiny_model_dir: Path, short_clip: Path) -> dict[str, Any]:
    """One small run of every mode: onnxruntime, an unknown and a broken backend."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STREAM_DERAIN_ENGINES", str(tiny_model_dir))
    try:
        cfg = BenchConfig(mode="all", engine=EngineSpec(model="tiny"),
                          backends=("onnxruntime", "nosuch", "broken"),
                          precisions=("fp32",), input=short_clip, **SMALL)
        return run_bench(cfg, backend_factory=_broken_factory)
    finally:
        mp.undo()


def test_report_matches_schema_and_is_json(report: dict[str, Any]) -> None:
    assert validate_report(report) == []
    again = json.loads(json.dumps(report, default=str))
    assert validate_report(again) == []
    assert report["model"]["name"] == "tiny" and report["model"]["macs_per_pixel"] > 0
    libs = {"av", "numpy", "onnxruntime", "torch", "opencv", "tensorrt"}
    assert set(report["machine"]["libraries"]) >= libs
    assert report["git_revision"] is None or len(report["git_revision"]) == 40
    ok = [r for r in report["engine"] if r["status"] == "ok"]
    assert len(ok) == 1 and ok[0]["iters"] == 2 and ok[0]["ratio_vs_baseline"] == 1.0
    assert ok[0]["latency_ms"]["p50"] <= ok[0]["latency_ms"]["p99"]


def test_validate_report_finds_problems(report: dict[str, Any]) -> None:
    bad = json.loads(json.dumps(report, default=str))
    del bad["engine"][0]["fps"]
    bad["variants"][0]["status"] = "fine"
    bad["engine"][0]["batch"] = True
    problems = validate_report(bad)
    assert any("engine[0].fps: missing" in p for p in problems)
    assert any("variants[0].status" in p for p in problems)
    assert any("engine[0].batch" in p for p in problems)
    assert validate_report({"schema": 1}) != []


def test_failed_backends_are_reported_not_omitted(report: dict[str, Any]) -> None:
    status = {v["variant"]: (v["status"], v["reason"]) for v in report["variants"]}
    assert status["onnxruntime/fp32"][0] == "ok"
    assert status["nosuch/fp32"][0] == "failed" and "unknown backend" in status["nosuch/fp32"][1]
    assert status["broken/fp32"] == ("failed", "BackendError: broken is not installed here")
    for mode in ("engine", "e2e"):
        rows = {r["variant"]: r for r in report[mode]}
        assert rows["broken/fp32"]["status"] == "failed" and "not installed" in rows["broken/fp32"]["reason"]
        assert rows["nosuch/fp32"]["status"] == "failed"


def test_gpu_only_backend_is_skipped_without_gpu(tiny_engines: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_derain.bench import runner

    monkeypatch.setattr(runner, "gpu_visible", lambda: False)
    cfg = BenchConfig(mode="engine", engine=EngineSpec(model=tiny_engines), backends=("tensorrt", "torch"),
                      precisions=("fp16",), **SMALL)
    rep = run_bench(cfg)
    assert [v["status"] for v in rep["variants"]] == ["skipped", "skipped"]
    assert "no GPU" in rep["variants"][0]["reason"] and rep["engine"][0]["status"] == "skipped"
    assert validate_report(rep) == []


def test_e2e_efficiency_is_pipeline_over_slowest_stage(report: dict[str, Any]) -> None:
    (row,) = [r for r in report["e2e"] if r["status"] == "ok"]
    ran = {k: s["fps"] for k, s in row["stages"].items() if s["status"] == "ok"}
    assert set(ran) >= {"decode", "infer", "encode"} and row["pipeline"]["frames"] == 6
    assert row["bottleneck"] == min(ran, key=ran.get)
    assert row["efficiency"] == pytest.approx(row["pipeline"]["fps"] / min(ran.values()), rel=1e-2)
    assert [s["name"] for s in row["pipeline"]["stages"]][0] == "decode"
    assert all("queue_mean" in s and "fps_in_pipeline" in s for s in row["pipeline"]["stages"])


def test_markdown_chart_and_script(report: dict[str, Any], tmp_path: Path) -> None:
    import cv2

    from stream_derain.bench.chart import write_chart
    from stream_derain.bench.markdown import section_markdown, to_markdown

    md = to_markdown(report)
    assert md.startswith("### CPU only: ")  # the subsection names the device
    assert "Device: " in md and "| Backend | Resolution |" in md and "| Backend | Input |" in md
    assert "GPU peak MB" not in md  # a CPU run shows no GPU columns
    assert "broken/fp32" in md and "failed" in md
    assert "| broken/fp32" not in md  # failed variants are notes, not table rows
    from stream_derain.bench.chart import chart_data, not_run

    write_chart(report, tmp_path / "chart.png")
    img = cv2.imread(str(tmp_path / "chart.png"))
    assert img is not None and img.shape[2] == 3
    assert chart_data(report)[1] == ["onnxruntime/fp32"]  # bars only for what ran somewhere ...
    assert not_run(report) == ["nosuch/fp32 (failed)", "broken/fp32 (failed)"]  # ... the rest is named
    (tmp_path / "r.json").write_text(json.dumps(report, default=str))
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_to_markdown", Path(__file__).resolve().parents[2] / "scripts" / "bench_to_markdown.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(tmp_path / "r.json"), "-o", str(tmp_path / "perf.md")]) == 0
    assert (tmp_path / "perf.md").read_text() == section_markdown([report])
    assert md in section_markdown([report]) and "--from-json" in section_markdown([report])


def test_cli_bench_engine(tiny_engines: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stream_derain.cli import app

    out = tmp_path / "r.json"
    args = ["bench", "--mode", "engine", "-r", "64x48", "--iters", "2", "--warmup", "1", "--backend",
            "onnxruntime", "--model", tiny_engines, "--json", str(out), "--markdown", str(tmp_path / "p.md")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Engine only" in res.output and validate_report(json.loads(out.read_text())) == []
    bad = CliRunner().invoke(app, ["bench", "--mode", "e2e", "--input", str(tmp_path / "missing.mp4"),
                                   "--model", tiny_engines])
    assert bad.exit_code == 1 and "not found" in bad.output


def test_cli_renders_saved_reports(report: dict[str, Any], tmp_path: Path) -> None:
    """``--from-json`` measures nothing: it regenerates the tables, Markdown and charts."""
    from typer.testing import CliRunner

    from stream_derain.bench.markdown import section_markdown
    from stream_derain.cli import app

    gpu = json.loads(json.dumps(report, default=str))
    gpu["machine"]["gpus"] = [{"name": "NVIDIA H100 80GB HBM3", "driver": "570.1", "memory": "81559 MiB"}]
    (tmp_path / "cpu.json").write_text(json.dumps(report, default=str))
    (tmp_path / "gpu.json").write_text(json.dumps(gpu))
    args = ["bench", "--from-json", str(tmp_path / "cpu.json"), "--from-json", str(tmp_path / "gpu.json"),
            "--markdown", str(tmp_path / "perf.md"), "--chart", str(tmp_path / "c.png")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    md = (tmp_path / "perf.md").read_text()
    assert md == section_markdown([json.loads((tmp_path / "cpu.json").read_text()), gpu])
    assert "### CPU only: " in md and "### NVIDIA H100 80GB HBM3 (driver 570.1)" in md
    assert (tmp_path / "c-1.png").is_file() and (tmp_path / "c-2.png").is_file()
    assert "End to end" in res.output
    (tmp_path / "bad.json").write_text(json.dumps({"schema": 1}))
    bad = CliRunner().invoke(app, ["bench", "--from-json", str(tmp_path / "bad.json"), "--markdown",
                                   str(tmp_path / "x.md")])
    assert bad.exit_code == 1 and "not a bench report" in bad.output and not (tmp_path / "x.md").exists()


def test_default_sample_is_in_the_checkout_and_the_wheel(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``stream-derain bench`` after a plain ``pip install .`` finds the sample inside the package."""
    from stream_derain.bench import config

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    assert config.default_sample().is_file() and BenchConfig().e2e_input() == config.default_sample()
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    forced = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert forced[f"samples/{config.DEFAULT_SAMPLE}"] == f"stream_derain/samples/{config.DEFAULT_SAMPLE}"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / config.DEFAULT_SAMPLE).write_bytes(b"x")
    monkeypatch.setattr(config, "SAMPLES_DIR", tmp_path / "no-checkout")
    monkeypatch.setattr(config, "PACKAGED_SAMPLES_DIR", tmp_path / "pkg")
    assert config.default_sample() == tmp_path / "pkg" / config.DEFAULT_SAMPLE


def test_bench_measures_what_derain_runs_by_default() -> None:
    """Issue 27: bench's precision defaults to derain's (auto), not fp32."""
    from stream_derain.derain import DerainConfig

    assert BenchConfig().precisions == (DerainConfig(input=Path()).engine.precision,) == ("auto",)


def test_bench_hands_the_typed_backend_options_to_the_backend(tiny_engines: str) -> None:
    """Issue 27: bench takes derain's device and TensorRT options and passes them on."""
    from stream_derain.backends.options import Torch

    seen: list[Any] = []

    def factory(name: str, model: Any, precision: str, threads: int, options: Any = ()) -> Any:
        seen.append(options)
        raise BackendError("recorded")

    cfg = BenchConfig(mode="engine", engine=EngineSpec(model=tiny_engines,
                                         backend_options=(Torch(device="cpu"),)),
                      backends=("onnxruntime",), precisions=("fp32",), **SMALL)
    run_bench(cfg, backend_factory=factory)
    assert seen == [(Torch(device="cpu"),)]


def test_headline_adds_the_alignment_cost_of_an_aligned_model(report: dict[str, Any]) -> None:
    """A model whose manifest records its window's alignment cost shows it beside the
    network's MACs; one that aligns nothing shows the network's alone."""
    from stream_derain.bench.report import headline

    plain = headline(report)[1]
    assert "alignment" not in plain and "MACs/pixel," in plain
    model = {**report["model"], "manifest": {**report["model"]["manifest"],
                                             "align_macs_per_pixel": {"640x360": {"centred": 449.7}}}}
    line = headline({**report, "model": model})[1]
    assert "MACs/pixel (+450 for the window's alignment at 640x360, centred)," in line
