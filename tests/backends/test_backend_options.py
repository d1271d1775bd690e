"""Issue 15: typed per-backend options (backends.options), reachable from DerainConfig,
LiveConfig and the CLI; create_backend forwards them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_derain import engine_spec
from stream_derain.backends import ORT, OV, TRT, Torch, create_backend
from stream_derain.backends.options import options_for, parse_size
from stream_derain.cli import app
from stream_derain.derain import DerainConfig
from stream_derain.engine_spec import EngineSpec
from stream_derain.errors import BackendError, ConfigError
from stream_derain.live import LiveConfig, SourceConfig


def test_create_backend_forwards_each_backends_options(tiny_model) -> None:
    trt = create_backend("tensorrt", tiny_model, "fp16", options=[TRT(720, 1280, 2, 512), Torch("cpu")])
    assert (trt.height, trt.width, trt.max_batch, trt.workspace_mb) == (720, 1280, 2, 512)
    assert create_backend("torch", tiny_model, options=[Torch("cuda:1")]).requested_device == "cuda:1"
    assert create_backend("onnxruntime", tiny_model, options=[ORT(threads=2)]).threads == 2
    assert create_backend("openvino", tiny_model, threads=3, options=[OV(threads=1)]).threads == 1


def test_the_options_can_name_the_backend_and_threads_fill_the_cpu_ones(tiny_model) -> None:
    be = create_backend(TRT(workspace_mb=256), tiny_model, "fp16")  # vs-mlrt's Backend.TRT(...) style
    assert be.name == "tensorrt" and be.workspace_mb == 256 and be.max_batch == 4
    assert create_backend("onnxruntime", tiny_model, threads=3).threads == 3
    assert options_for("openvino", (), threads=2) == OV(threads=2)
    assert options_for("torch", ()) == Torch("auto")


@pytest.mark.parametrize("make", [lambda: Torch("gpu"), lambda: TRT(workspace_mb=0), lambda: ORT(threads=-1),
                                  lambda: options_for("torch", [Torch(), Torch("cpu")]),
                                  lambda: parse_size("720p")])
def test_bad_options_are_config_errors(make) -> None:
    with pytest.raises(ConfigError):
        make()


def test_configs_reach_the_backend(tiny_model, monkeypatch) -> None:
    monkeypatch.setattr("stream_derain.engine_spec.resolve_model", lambda name, use="files": tiny_model)
    cfg = DerainConfig(input=Path("x.mp4"),
                       engine=EngineSpec(backend="torch", backend_options=(Torch("cpu"), TRT(max_batch=1))))
    assert cfg.engine.create().requested_device == "cpu"
    assert EngineSpec(backend=TRT()).backend_name == "tensorrt"
    live = LiveConfig(SourceConfig("rtsp://x/y"), engine=EngineSpec(backend_options=(Torch("cpu"),)),
                      preview_port=0)
    assert live.engine.backend_options == (Torch("cpu"),)


def test_cli_builds_the_typed_options(monkeypatch, use_tiny_model, make_clip, tmp_path: Path) -> None:
    seen: list[tuple] = []

    def fake(name, model, precision, threads, options):  # noqa: ANN001, ANN202
        seen.append(tuple(options))
        raise BackendError("recorded")

    monkeypatch.setattr(engine_spec, "create_backend", fake)
    result = CliRunner().invoke(app, ["derain", str(make_clip()), "-o", str(tmp_path / "b.mp4"), "--device",
                                      "cuda:0", "--trt-max-size", "1280x720", "--trt-workspace", "2048"])
    assert result.exit_code == 1 and "recorded" in result.output, result.output
    assert seen[0] == (Torch("cuda:0"), TRT(height=720, width=1280, workspace_mb=2048))


@pytest.mark.parametrize("args,words", [(["--device", "gpu"], "torch device"),
                                        (["--trt-max-size", "big"], "WIDTHxHEIGHT")])
def test_cli_option_errors_are_one_line(args, words, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["derain", str(tmp_path / "a.mp4"), *args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and words in result.output
