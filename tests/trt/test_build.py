"""Real engine builds from the tiny model's ONNX. With TensorRT-RTX they run on the CPU
(ahead of time, no GPU); standard TensorRT needs a GPU and skips otherwise."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_derain.errors import BackendError, ModelError
from stream_derain.trt import probe
from stream_derain.trt.cache import EngineCache
from stream_derain.trt.engine import EngineRequest, build_engine, get_engine

pytestmark = [pytest.mark.tensorrt, pytest.mark.usefixtures("can_build")]
SMALL = dict(height=32, width=48, max_batch=2)


def test_fp16_engine_builds_from_fp16_onnx(tiny_model, engine_cache: EngineCache) -> None:
    t0 = time.perf_counter()
    res, key = get_engine(EngineRequest(tiny_model, "fp16", **SMALL), engine_cache)
    seconds = time.perf_counter() - t0
    assert res.built and res.path.is_file() and len(res.plan) > 1000
    assert key.precision == "fp16" and key.onnx_sha256 == tiny_model.meta["files"]["fp16"]["sha256"]
    side = json.loads(engine_cache.sidecar_path(key).read_text())
    assert side["key"]["precision"] == "fp16" and side["onnx"].endswith("tiny.fp16.onnx")
    assert seconds < 60, f"tiny engine build took {seconds:.1f} s"


def test_dynamic_profile_engine(tiny_model, engine_cache: EngineCache) -> None:
    req = EngineRequest(tiny_model, "fp32", height=60, width=90, max_batch=3)
    res, key = get_engine(req, engine_cache)
    assert res.built and key.profile.min == (1, 16, 16) and key.profile.max == (3, 60, 92)
    assert "n1-3-3.h16-60-60.w16-92-92" in res.path.name


def test_static_profile_and_explicit_targets(tiny_model, engine_cache: EngineCache) -> None:
    info = probe.load()
    cc = "8.6,8.9" if info.compute_capability_api else None
    res, key = get_engine(EngineRequest(tiny_model, "fp16", dynamic=False, compute_capability=cc, **SMALL),
                          engine_cache)
    assert res.built and key.profile.min == key.profile.max == (2, 32, 48)
    if cc:
        assert key.target == "sm86+sm89"


def test_reuse_then_rebuild_on_key_change(tiny_model, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    first = build_engine(tiny_model, precision="fp16", cache_dir=tmp_path, **SMALL)
    mtime = first.path.stat().st_mtime_ns
    again = build_engine(tiny_model, precision="fp16", cache_dir=tmp_path, **SMALL)
    assert first.built and not again.built and again.path == first.path
    assert first.path.stat().st_mtime_ns == mtime
    bigger = build_engine(tiny_model, precision="fp16", cache_dir=tmp_path, height=64, width=48, max_batch=2)
    fp32 = build_engine(tiny_model, precision="fp32", cache_dir=tmp_path, **SMALL)
    assert bigger.built and fp32.built and len({first.path, bigger.path, fp32.path}) == 3
    first.path.write_bytes(b"\0" * 64)  # corrupt the plan
    with caplog.at_level(logging.WARNING):
        fixed = build_engine(tiny_model, precision="fp16", cache_dir=tmp_path, **SMALL)
    assert fixed.built and "corrupt" in caplog.text and fixed.path.stat().st_size > 1000


@pytest.mark.parametrize("junk", ["text", "truncated"])
def test_parse_error_is_clear(tiny_model, tmp_path: Path, junk: str) -> None:
    bad = tmp_path / "broken.onnx"
    data = tiny_model.path("fp32").read_bytes()
    bad.write_bytes(b"this is not a protobuf" if junk == "text" else data[: len(data) // 3])
    with pytest.raises(BackendError, match="cannot parse broken.onnx: .+"):
        build_engine(onnx=bad, precision="fp32", cache_dir=tmp_path / "c", **SMALL)


def test_missing_fp16_onnx(tiny_model_dir: Path, tmp_path: Path) -> None:
    if probe.load().fp16_flag:
        pytest.skip("tensorrt 10.x builds the FP32 ONNX with the FP16 flag instead")
    with pytest.raises(ModelError, match="no fp16 file"):
        build_engine(onnx=tiny_model_dir / "tiny.onnx", precision="fp16", cache_dir=tmp_path, **SMALL)


def test_cli_build_engine(model_copy: Path) -> None:
    from stream_derain.cli import app

    args = ["build-engine", "--model", "tiny", "--height", "32", "--width", "48", "--max-batch", "2"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "built in" in first.output and str(model_copy) in first.output
    second = CliRunner().invoke(app, args + ["--check"])
    assert second.exit_code == 0, second.output
    assert "cached, reused" in second.output and "check: " in second.output
    if not probe.engine_support()[0]:
        assert "NOT executed" in second.output and "onnx fp16 vs onnx fp32" in second.output
    bad = CliRunner().invoke(app, args + ["--precision", "int8"])
    assert bad.exit_code == 1 and "choose fp16 or fp32" in bad.output
