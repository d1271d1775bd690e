"""The library's defaults: precision ``auto`` like the CLI, and the default config runs on the CPU."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from stream_derain.backends import PRECISIONS, create_backend, installed, resolve_precision
from stream_derain.derain import DerainConfig, DerainResult, derain
from stream_derain.engine_spec import EngineSpec
from stream_derain.io import images
from stream_derain.live.run import LiveConfig
from stream_derain.live.source import SourceConfig

CPU_BACKENDS = [b for b in ("onnxruntime", "openvino", "torch") if installed(b)]


def _default(cls: type, name: str) -> object:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def test_library_precision_defaults_to_auto_like_the_cli() -> None:
    assert _default(EngineSpec, "precision") == "auto"
    assert DerainConfig(input=Path("x.mp4")).engine.precision == "auto"
    assert LiveConfig(SourceConfig("rtsp://cam/1")).engine.precision == "auto"


@pytest.mark.parametrize("name", sorted(PRECISIONS))
def test_every_backend_resolves_auto(name: str) -> None:
    assert resolve_precision(name, "auto") in ("auto", *PRECISIONS[name])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_default_precision_runs_on_the_cpu(backend: str, tiny_model, make_clip, tmp_path: Path) -> None:
    src = make_clip(frames=3, size=(64, 48), audio=False)
    cfg = DerainConfig(input=src, output=tmp_path / "out.mp4", engine=EngineSpec(backend=backend, threads=1,
                                                                                 smooth=False))
    with create_backend(backend, tiny_model, cfg.engine.precision, threads=1) as be:
        assert be.device == "cpu"
        out, result = derain(cfg, backend=be)
    assert out.is_file() and result.frames == 3


def test_default_config_runs(use_tiny_model: Path, make_clip, tmp_path: Path) -> None:
    src = make_clip(frames=3, size=(64, 48), audio=False)
    out, result = derain(DerainConfig(input=src, output=tmp_path / "out.mp4", engine=EngineSpec(threads=1)))
    assert out.is_file() and result.frames == 3


def test_derain_returns_one_type_for_videos_images_and_folders(tiny_model, make_clip, tmp_path: Path) -> None:
    src = make_clip(frames=3, size=(64, 48), audio=False)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        images.write_image(folder / name, np.full((40, 56, 3), 90, np.uint8))
    with create_backend("onnxruntime", tiny_model, threads=1) as be:
        video = derain(DerainConfig(input=src, output=tmp_path / "v.mp4", engine=EngineSpec(smooth=False)),
                       backend=be)[1]
        image = derain(DerainConfig(input=folder / "a.png", output=tmp_path / "a.png"), backend=be)[1]
        many = derain(DerainConfig(input=folder, output=tmp_path / "out"), backend=be)[1]
    assert all(isinstance(r, DerainResult) for r in (video, image, many))
    assert (video.kind, video.frames, image.kind, image.frames, many.kind, many.frames) == \
        ("video", 3, "images", 1, "images", 2)
    assert video.stages and not video.interrupted and not image.stages


def test_a_multi_frame_model_derains_images_with_the_image_in_every_slot(tmp_path: Path) -> None:
    """max-k5 of a window holding one image five times is that image."""
    pytest.importorskip("onnx")
    from multiframe_models import write_models

    from stream_derain.catalog import load_model_info

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(5)
    pics = {name: rng.integers(0, 256, size, np.uint8) for name, size in
            (("a.png", (40, 56, 3)), ("b.png", (40, 56, 3)), ("c.png", (33, 21, 3)))}
    for name, pic in pics.items():
        images.write_image(folder / name, pic)
    model = load_model_info("max-k5", write_models(tmp_path, (5,)))
    with create_backend("onnxruntime", model, threads=1) as be:
        _, result = derain(DerainConfig(input=folder, output=tmp_path / "out", engine=EngineSpec(batch=2)),
                           backend=be)
    assert result.frames == 3
    for name in pics:
        out, src = (images.read_image(where / name).rgb8 for where in (tmp_path / "out", folder))
        assert np.array_equal(out, src)


def test_the_window_option_is_checked() -> None:
    from stream_derain.errors import ConfigError

    assert DerainConfig(input=Path("x.mp4")).window_mode == "centred"
    assert DerainConfig(input=Path("x.mp4"), engine=EngineSpec(window="causal")).window_mode == "causal"
    with pytest.raises(ConfigError, match="window"):
        DerainConfig(input=Path("x.mp4"), engine=EngineSpec(window="both"))
    with pytest.raises(ConfigError, match="window"):
        LiveConfig(SourceConfig("rtsp://cam/1"), engine=EngineSpec(window="both"))


def test_still_images_compute_no_alignment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An "align": "flow" model on still images: every slot is the image itself, so there is
    nothing to align (no flow computed) and slot 1 gives the image back."""
    pytest.importorskip("onnx")
    from multiframe_models import write_models

    import stream_derain.align
    import stream_derain.window
    from stream_derain.catalog import load_model_info

    def fail(*args, **kwargs):
        raise AssertionError("alignment computed for a still image")

    for module in (stream_derain.align, stream_derain.window):
        monkeypatch.setattr(module, "align_window", fail)
    folder = tmp_path / "imgs"
    folder.mkdir()
    pic = np.random.default_rng(6).integers(0, 256, (40, 56, 3), np.uint8)
    images.write_image(folder / "a.png", pic)
    model = load_model_info("slot1-k5-flow", write_models(tmp_path, (5,)))
    assert model.align == "flow"
    with create_backend("onnxruntime", model, threads=1) as be:
        _, result = derain(DerainConfig(input=folder, output=tmp_path / "out"), backend=be)
    out, src = (images.read_image(where / "a.png").rgb8 for where in (tmp_path / "out", folder))
    assert result.frames == 1 and np.array_equal(out, src)


def test_images_run_the_model_the_manifest_names_for_stills(tmp_path: Path) -> None:
    """A multi-frame model whose entry says ``stills`` (v4 names v3) leaves images to that model."""
    pytest.importorskip("onnx")
    import json

    import onnx
    from multiframe_models import write_models
    from onnx import TensorProto, helper, numpy_helper

    from stream_derain.catalog import load_model_info

    folder = write_models(tmp_path, (5,))
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])
    one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
    graph = helper.make_graph([helper.make_node("Sub", ["one", "input"], ["output"])], "neg", [x], [y], [one])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    onnx.save(proto, str(folder / "neg.onnx"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["models"]["neg"] = {"version": "test", "multiple": 4, "files": {"fp32": {"file": "neg.onnx"}}}
    manifest["models"]["max-k5"]["stills"] = "neg"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    pic = np.random.default_rng(3).integers(0, 256, (24, 32, 3), np.uint8)
    images.write_image(tmp_path / "a.png", pic)
    with create_backend("onnxruntime", load_model_info("max-k5", folder), threads=1) as be:
        derain(DerainConfig(input=tmp_path / "a.png", output=tmp_path / "b.png",
                            engine=EngineSpec(backend="onnxruntime")),
               backend=be)
    src, out = (images.read_image(tmp_path / name).rgb8 for name in ("a.png", "b.png"))
    assert np.array_equal(out, 255 - src)
