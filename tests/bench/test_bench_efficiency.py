"""bench.efficiency: what the end-to-end numbers mean (efficiency, CPU-bound ceiling, diagnosis)."""

from __future__ import annotations

import pytest

from stream_derain.bench.efficiency import pipeline_efficiency


def test_pipeline_efficiency_definition() -> None:
    stages = {"decode": {"status": "ok", "fps": 100.0}, "infer": {"status": "ok", "fps": 10.0},
              "smooth": {"status": "unavailable", "fps": None}, "encode": {"status": "ok", "fps": 40.0}}
    res = pipeline_efficiency(9.0, stages)
    assert res["bottleneck"] == "infer" and res["efficiency"] == pytest.approx(0.9) and res["meets_target"]
    assert pipeline_efficiency(5.0, stages)["meets_target"] is False
    assert pipeline_efficiency(5.0, {})["efficiency"] is None


def test_efficiency_above_one_is_flagged() -> None:
    stages = {"infer": {"status": "ok", "fps": 2.0}, "encode": {"status": "ok", "fps": 40.0}}
    res = pipeline_efficiency(8.0, stages)
    assert res["efficiency"] == pytest.approx(4.0) and "OMP_WAIT_POLICY" in res["warning"]
    assert pipeline_efficiency(1.9, stages)["warning"] is None


def test_cpu_bound_diagnosis() -> None:
    """Inference alone uses every core: the pipeline cannot reach its fps, and the
    report says so instead of blaming the threads."""
    stages = {"decode": {"status": "ok", "fps": 200.0, "cpu_ms_per_frame": 5.0},
              "infer": {"status": "ok", "fps": 30.0, "cpu_ms_per_frame": 60.0},  # 2 cores x 33 ms
              "smooth": {"status": "ok", "fps": 100.0, "cpu_ms_per_frame": 10.0},
              "encode": {"status": "ok", "fps": 40.0, "cpu_ms_per_frame": 25.0}}
    res = pipeline_efficiency(20.0, stages, cores=2)
    assert res["bottleneck"] == "infer" and res["efficiency"] == pytest.approx(20 / 30, abs=1e-3)
    assert res["cpu_ms_per_frame"] == 100.0 and res["cpu_bound_fps"] == pytest.approx(20.0)
    assert res["overlap"] == pytest.approx(1.0) and res["diagnosis"].startswith("CPU-bound")
    serial = pipeline_efficiency(10.0, stages, cores=2)
    assert serial["overlap"] == pytest.approx(0.5) and "serialising" in serial["diagnosis"]
    roomy = pipeline_efficiency(15.0, stages, cores=16)  # plenty of cores: not the CPU
    assert roomy["cpu_bound_fps"] > 30 and roomy["diagnosis"].startswith("stages do not overlap")
    assert pipeline_efficiency(29.0, stages, cores=2)["diagnosis"].startswith("stages overlap")
    # a short clip: below target over the whole run, but not while frames flow
    short = pipeline_efficiency(24.0, stages, cores=16, system={"steady_fps": 28.5, "startup_s": 0.05,
                                                                 "drain_s": 0.7})
    assert short["steady_efficiency"] == pytest.approx(0.95) and "drain" in short["diagnosis"]
    assert short["diagnosis"].startswith("stages overlap")
    # the machine was saturated during the run, partly by other processes
    busy = pipeline_efficiency(12.0, stages, cores=2, system={"system_cpu_busy": 0.98, "cpu_util": 1.2,
                                                               "other_processes_cores": 0.76})
    assert busy["diagnosis"].startswith("CPU-bound: every core was busy")
    assert "idle machine" in busy["diagnosis"]
