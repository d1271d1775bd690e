"""Issue 27, one run layer: one EngineSpec in the derain, live and bench configs, one
opener (open_engine), one CLI option group; a backend option added once (OpenVINO's
streams) reaches the backend from all three commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stream_derain import engine_spec
from stream_derain.backends import OV, TRT, Torch
from stream_derain.backends.base import Backend
from stream_derain.bench import BenchConfig
from stream_derain.cli import app
from stream_derain.cli.engine_options import engine_spec as spec_of_flags
from stream_derain.derain import DerainConfig
from stream_derain.engine_spec import EngineSpec, open_engine
from stream_derain.errors import BackendError, ConfigError
from stream_derain.live import LiveConfig, SourceConfig

PACKAGE = Path(__file__).resolve().parents[2] / "stream_derain"


def test_the_three_configs_embed_one_spec() -> None:
    spec = EngineSpec(backend="onnxruntime", threads=2, batch=3, smooth=False, window="causal")
    assert DerainConfig(input=Path("a.mp4"), engine=spec).engine is spec
    assert LiveConfig(SourceConfig("rtsp://x/y"), engine=spec).engine is spec
    bench = BenchConfig(engine=spec)
    assert bench.engine is spec and bench.batches == (3,) and bench.precisions == ("auto",)
    assert DerainConfig(input=Path("a.mp4"), engine=spec).window_mode == "causal"


@pytest.mark.parametrize("kw,words", [({"window": "both"}, "window"), ({"batch": 0}, "batch"),
                                      ({"threads": -1}, "threads"), ({"precision": "int4"}, "precision"),
                                      ({"smooth_strength": 2.0}, "strength"), ({"backend": 3}, "backend"),
                                      ({"backend_options": ("cpu",)}, "options")])
def test_a_bad_spec_is_a_config_error(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        EngineSpec(**kw)


def test_open_engine_activates_and_releases(tiny_model) -> None:
    spec = EngineSpec(backend="onnxruntime", precision="fp32", threads=1)
    with open_engine(spec, tiny_model) as be:
        assert isinstance(be, Backend) and be.active and be.threads == 1
    assert not be.active


def test_no_backend_is_entered_by_hand_outside_the_backends_package() -> None:
    """Every front door and executor opens its backend with open_engine (or ``with``)."""
    users = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py")
             if "backends" not in p.parts and re.search(r"(?<!super\(\))\.__enter__\(\)", p.read_text())]
    assert not users


def test_the_flags_make_the_typed_options() -> None:
    spec = spec_of_flags(backend="openvino", device="cpu", trt_max_batch=2, ov_streams=3)
    assert spec.backend_options == (Torch("cpu"), TRT(max_batch=2), OV(streams=3))
    assert spec_of_flags().backend_options == ()
    with pytest.raises(ConfigError, match="streams"):
        OV(streams=-1)


@pytest.mark.parametrize("command", ["derain", "live", "bench"])
def test_every_command_takes_the_engine_options(command: str) -> None:
    text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    for flag in ("--ov-streams", "--device", "--device-frames", "--trt-max-size", "--trt-workspace",
                 "--threads", "--model", "--smooth-strength"):
        assert flag in text, (command, flag)


def test_the_streams_reach_openvinos_compiled_model(tiny_model) -> None:
    pytest.importorskip("openvino")
    spec = EngineSpec(backend="openvino", precision="fp32", threads=2, backend_options=(OV(streams=2),))
    with open_engine(spec, tiny_model) as be:
        assert be.streams == 2 and int(be.compiled.get_property("NUM_STREAMS")) == 2
    with open_engine(EngineSpec(backend="openvino", precision="fp32", threads=1), tiny_model) as be:
        assert int(be.compiled.get_property("NUM_STREAMS")) == 1  # the default, as before


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Records what every front door asks create_backend for, instead of creating it."""
    seen: list[tuple[Any, ...]] = []

    def create(name, model, precision, threads, options):  # noqa: ANN001, ANN202
        seen.append((name, precision, threads, tuple(options)))
        raise BackendError("recorded")

    monkeypatch.setattr(engine_spec, "create_backend", create)
    return seen


def test_derain_live_and_bench_hand_the_streams_to_the_backend(made, use_tiny_model, make_clip,
                                                                tmp_path: Path) -> None:
    flags = ["--ov-streams", "2", "--threads", "1"]
    runs = [["derain", str(make_clip()), "-o", str(tmp_path / "o.mp4"), "--backend", "openvino", *flags],
            ["live", "rtsp://127.0.0.1:1/x", "--preview-port", "0", "--backend", "openvino", *flags],
            ["bench", "--mode", "engine", "--backend", "openvino", "-r", "32x32", *flags]]
    for args in runs:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and "Error:" in result.output, (args, result.output)
    assert [m[0] for m in made] == ["openvino"] * 3
    assert all(m[2] == 1 and OV(streams=2) in m[3] for m in made), made
    assert made[2][1] == "auto"  # bench runs what derain runs by default
