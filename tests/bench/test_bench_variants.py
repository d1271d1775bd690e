"""Named variants (``--variant NAME=BACKEND/PRECISION[,preset=P][,model=M]``): a past
release's settings against today's defaults in one run, each with its model and preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream_derain.backends.base import Backend
from stream_derain.bench import BenchConfig, run_bench, validate_report
from stream_derain.bench.config import Variant, parse_variant
from stream_derain.bench.markdown import to_markdown
from stream_derain.engine_spec import EngineSpec
from stream_derain.errors import ConfigError


def test_parse_variant() -> None:
    assert parse_variant("v1=onnxruntime/fp32,preset=medium,model=runs/v1.onnx") == \
        Variant("v1", "onnxruntime", "fp32", preset="medium", model="runs/v1.onnx")
    assert parse_variant("default=auto") == Variant("default", "auto", "auto")
    assert not Variant("onnxruntime/fp32", "onnxruntime", "fp32").named
    assert parse_variant("x=openvino/bf16").named
    assert parse_variant("v1=openvino/int8") == Variant("v1", "openvino", "int8")
    for bad in ("onnxruntime/fp32", "=auto", "v1=nosuch/fp32", "v1=auto/int4", "v1=auto,crf=3",
                "v1=auto,preset=a,preset=b", "v1=auto,preset="):
        with pytest.raises(ConfigError):
            parse_variant(bad)
    with pytest.raises(ConfigError, match="differ"):
        BenchConfig(variants=(Variant("a", "auto", "auto"), Variant("a", "torch", "fp32")))


class Identity(Backend):
    """Returns its input; ``name`` is what a factory asked for (``auto``: onnxruntime)."""

    def __init__(self, model: Any, precision: str, name: str) -> None:
        super().__init__(model, precision)
        self.name = name  # type: ignore[misc]

    def activate(self) -> None:
        pass

    def run(self, x: np.ndarray) -> np.ndarray:
        return x


def test_variants_carry_their_model_and_preset(tiny_engines: str, short_clip: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.onnx"
    old.write_bytes(b"not read by the fake backend")
    seen: list[tuple[str, str, str]] = []

    def factory(name: str, model: Any, precision: str, threads: int, options: Any = ()) -> Backend:
        seen.append((name, model.name, precision))
        return Identity(model, "fp32" if precision == "auto" else precision,
                        "onnxruntime" if name == "auto" else name)

    cfg = BenchConfig(mode="e2e", input=short_clip, engine=EngineSpec(model=tiny_engines, smooth=False),
                      frames=4, warmup=0, rounds=2,
                      variants=(parse_variant(f"v1=onnxruntime/fp32,preset=ultrafast,model={old}"),
                                parse_variant("default=auto/auto")))
    report = run_bench(cfg, backend_factory=factory)
    assert validate_report(report) == []
    assert seen == [("onnxruntime", "old", "fp32"), ("auto", "tiny", "auto")]
    assert report["baseline"] == "v1" and [v["variant"] for v in report["variants"]] == ["v1", "default"]
    v1, default = report["e2e"]
    assert (v1["model"], v1["model_path"], v1["encoder"]["preset"]) == ("old", str(old), "ultrafast")
    assert default["model"] is None and default["encoder"]["preset"] == "veryfast"  # derain's default
    assert (default["backend"], default["backend_requested"]) == ("onnxruntime", "auto")
    assert v1["ratio_vs_baseline"] == 1.0 and default["ratio_vs_baseline"] > 0
    assert len(default["pipeline_fps_rounds"]) == 2
    assert report["config"]["variants"][1] == {"name": "default", "backend": "auto", "precision": "auto",
                                               "preset": None, "model": None}
    md = to_markdown(report)
    assert "v1: onnxruntime, fp32, old, preset ultrafast" in md
    assert "default: onnxruntime (auto), fp32, tiny, preset veryfast" in md
    assert "preset ultrafast (v1), veryfast (default)" in md
    assert "CPU ms/frame (decode / infer / smooth / encode; pipeline)" in md


def test_cli_variant_excludes_backend_and_precision() -> None:
    from typer.testing import CliRunner

    from stream_derain.cli import app

    r = CliRunner().invoke(app, ["bench", "--mode", "e2e", "--variant", "a=auto", "--backend", "onnxruntime"])
    assert r.exit_code != 0 and "--variant" in r.output
