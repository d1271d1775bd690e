"""Backends with a multi-frame model: NxHxWx(3K) uint8 windows in, NxHxWx3 out, the
window's channel count checked, odd sizes padded and cropped; the TensorRT profile's
input channels."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from stream_derain.backends import create_backend
from stream_derain.backends.base import check_batch, model_frames, to_nchw, to_nhwc_uint8
from stream_derain.catalog import load_model_info
from stream_derain.errors import InputError
from stream_derain.trt.builder import Profile


@pytest.fixture(scope="module")
def multi_dir(tmp_path_factory):
    pytest.importorskip("onnx")
    from multiframe_models import write_models

    return write_models(tmp_path_factory.mktemp("multiframe"))


def windows(n: int = 2, h: int = 21, w: int = 30, k: int = 5) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (n, h, w, 3 * k), dtype=np.uint8)


def test_layout_helpers_take_any_channels() -> None:
    x = windows()
    padded = to_nchw(x, 4)
    assert padded.shape == (2, 15, 24, 32)
    assert np.array_equal(to_nhwc_uint8(padded, 21, 30), x)
    assert np.array_equal(to_nhwc_uint8(padded[:, 6:9], 21, 30), x[..., 6:9])
    check_batch(x, 15)
    with pytest.raises(InputError, match="5-frame window"):
        check_batch(x[..., :3], 15)


@pytest.mark.parametrize("kind", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("slot", [0, 3])
def test_backend_returns_the_slot_the_model_reads(multi_dir, kind, slot) -> None:
    if importlib.util.find_spec(kind) is None:
        pytest.skip(f"{kind} is not installed")
    model = load_model_info(f"slot{slot}-k5", multi_dir)
    x = windows()
    with create_backend(kind, model, "fp32") as be:
        assert model_frames(be) == 5
        y = be.infer(x)
        with pytest.raises(InputError):
            be.infer(x[..., :3])  # a lone frame is not a 5-frame window
    assert y.shape == (2, 21, 30, 3) and np.array_equal(y, x[..., 3 * slot:3 * slot + 3])


def test_openvino_precision_check_runs_on_a_window(multi_dir) -> None:
    pytest.importorskip("openvino")
    with create_backend("openvino", load_model_info("max-k3", multi_dir), "fp32") as be:
        result = be._check(be.compiled)
    assert result["passed"] and result["psnr_db"] > 100


def test_tensorrt_profile_has_the_window_channels() -> None:
    three = Profile.for_resolution(64, 96, 2)
    many = Profile.for_resolution(64, 96, 2, channels=15)
    assert [s[1] for s in three.shapes()] == [3, 3, 3] and [s[1] for s in many.shapes()] == [15, 15, 15]
    assert "channels" not in three.as_dict() and many.as_dict()["channels"] == 15  # 3-channel keys unchanged
    assert many.tag == three.tag + ".c15"


def test_tensorrt_engine_request_uses_the_model_channels(multi_dir) -> None:
    from stream_derain.trt.engine import EngineRequest

    req = EngineRequest(load_model_info("slot1-k5", multi_dir), "fp32", 32, 48, 2)
    assert req.profile.channels == 15


@pytest.mark.torch
@pytest.mark.parametrize("head", [0, 8], ids=["implicit", "head"])
def test_torch_backend_runs_a_temporal_student_from_its_onnx(tmp_path, head) -> None:
    """The manifest's ``temporal`` entry (``TemporalConfig`` as a dict) rebuilds the
    multi-frame student; torch and ONNX Runtime then agree on 5-frame windows. A student
    with a replacement head (v4.2) exports no evidence convolution (frozen at zero):
    the torch backend keeps it at zero rather than refusing the file."""
    import json
    import warnings

    torch = pytest.importorskip("torch")
    temporal = pytest.importorskip("stream_derain.model.temporal")
    torch.manual_seed(0)
    options = {"head": head, "every": True, "floor": 3.0, "shared": 1, "rain_input": True} if head else {}
    tiny = {"channels": 12, "se_blocks": 1, "ca_blocks": 1}
    net = temporal.build_temporal(tiny, frames=5, **options).eval()
    for name, p in net.named_parameters():  # random weights (a head model's evidence conv stays at zero)
        if not name.startswith(net.outside_graph or "-"):
            torch.nn.init.normal_(p, std=0.02)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.rand(1, 15, 32, 48), str(tmp_path / "t.onnx"), input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": axes, "output": axes},
                          opset_version=17, dynamo=False)
    entry = {"version": "4", "multiple": net.cfg.scale, "frames": 5, "files": {"fp32": {"file": "t.onnx"}},
             "temporal": temporal.temporal_config_dict(net)}
    (tmp_path / "manifest.json").write_text(json.dumps({"default": "t", "models": {"t": entry}}))
    model = load_model_info("t", tmp_path)
    x = windows(2, 22, 29)
    with create_backend("torch", model) as tb, create_backend("onnxruntime", model) as ob:
        a, b = tb.infer(x), ob.infer(x)
    assert a.shape == (2, 22, 29, 3) and np.abs(a.astype(int) - b).max() <= 1
