"""OpenVINO side by side with ONNX Runtime in one bench run: precision used and checked."""

from __future__ import annotations

import pytest

from stream_derain.bench import BenchConfig, run_bench, validate_report
from stream_derain.bench.markdown import to_markdown
from stream_derain.engine_spec import EngineSpec

SMALL = dict(resolutions=((64, 48),), batches=(1,), warmup=1, iters=2, frames=6)


def test_openvino_rows_report_the_precision_used(tiny_engines: str) -> None:
    pytest.importorskip("openvino")
    cfg = BenchConfig(mode="engine", engine=EngineSpec(model=tiny_engines),
                      backends=("onnxruntime", "openvino"),
                      precisions=("auto", "bf16"), **SMALL)
    rep = run_bench(cfg)
    assert validate_report(rep) == []
    status = {v["variant"]: v for v in rep["variants"]}
    assert status["onnxruntime/bf16"]["status"] == "skipped"
    assert "runs fp32 or fp16" in status["onnxruntime/bf16"]["reason"]
    assert status["onnxruntime/auto"]["precision_used"] == "fp32"
    auto = status["openvino/auto"]
    assert auto["status"] == "ok" and auto["precision_used"] in ("fp32", "bf16", "fp16")
    rows = {r["variant"]: r for r in rep["engine"]}
    assert rows["openvino/auto"]["ratio_vs_baseline"] is not None  # against onnxruntime/auto (fp32)
    if auto["precision_used"] != "fp32":
        assert rows["openvino/auto"]["precision_psnr_db"] >= 50
        assert f"{auto['precision_used']}, " in to_markdown(rep)  # the check printed beside the fps
    if status["openvino/bf16"]["status"] == "ok":
        assert rows["openvino/bf16"]["precision_used"] == "bf16"
    assert "openvino" in rep["machine"]["libraries"] and rep["machine"]["cpu_native_precisions"][-1] == "fp32"


def test_rounds_interleave_variants_and_pool_them(tiny_engines: str, short_clip) -> None:  # noqa: ANN001
    cfg = BenchConfig(mode="all", engine=EngineSpec(model=tiny_engines), backends=("onnxruntime", "nosuch"),
                      precisions=("fp32", "fp16"), input=short_clip, rounds=2, **SMALL)
    rep = run_bench(cfg)
    assert validate_report(rep) == []
    assert [v["variant"] for v in rep["variants"]] == ["onnxruntime/fp32", "onnxruntime/fp16", "nosuch/fp32",
                                                       "nosuch/fp16"]
    ok = [r for r in rep["engine"] if r["status"] == "ok"]
    assert [r["variant"] for r in ok] == ["onnxruntime/fp32", "onnxruntime/fp16"]
    assert all(r["rounds"] == 2 and len(r["fps_rounds"]) == 2 and r["iters"] >= 2 for r in ok)
    assert ok[0]["ratio_vs_baseline"] == 1.0
    e2e = [r for r in rep["e2e"] if r["status"] == "ok"]
    assert len(e2e) == 2 and all(len(r["pipeline_fps_rounds"]) == 2 for r in e2e)
    assert all(r["pipeline"]["fps"] == max(r["pipeline_fps_rounds"]) for r in e2e)
    assert rep["config"]["rounds"] == 2
    assert {r["status"] for r in rep["engine"] if r["variant"].startswith("nosuch")} == {"failed"}
