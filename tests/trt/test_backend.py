"""The TensorRT backend: refuses clearly without a GPU; with one, matches ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream_derain.backends import BACKENDS, create_backend
from stream_derain.backends.trt_check import psnr
from stream_derain.errors import BackendError
from stream_derain.trt import probe


def test_registered() -> None:
    assert "tensorrt" in BACKENDS


@pytest.mark.tensorrt
def test_activate_without_gpu_says_why(tiny_model) -> None:
    if probe.gpu_info() is not None:
        pytest.skip("a GPU is present")
    backend = create_backend("tensorrt", tiny_model, "fp16")
    with pytest.raises(BackendError, match="TensorRT needs an NVIDIA GPU to run engines; building works"):
        backend.activate()


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


def _ort(tiny_model, x: np.ndarray) -> np.ndarray:
    from stream_derain.backends.trt_check import ort_run

    return ort_run(tiny_model.path("fp32"), x)


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision, floor", [("fp32", 40.0), ("fp16", 35.0)])
def test_engine_matches_onnxruntime(tiny_model, tmp_path: Path, precision: str, floor: float) -> None:
    from stream_derain.backends.tensorrt import TensorRTBackend

    if not probe.engine_support()[0]:
        pytest.skip(probe.engine_support()[1])
    x = _frames(5, 32, 48)  # 5 frames, max batch 2: three chunks, two in flight
    with TensorRTBackend(tiny_model, precision, 32, 48, 2, cache_dir=tmp_path) as backend:
        out = backend.run(x)
        assert out.shape == x.shape and out.dtype == np.float32
        assert psnr(out, _ort(tiny_model, x)) > floor
        small = _frames(1, 8, 12)  # below the profile minimum: padded and cropped
        assert backend.run(small).shape == small.shape
        big = _frames(1, 40, 48)  # above the profile maximum: one rebuild
        assert psnr(backend.run(big), _ort(tiny_model, big)) > floor


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_infer_tensor_stays_on_gpu(tiny_model, tmp_path: Path) -> None:
    import torch

    from stream_derain.backends.tensorrt import TensorRTBackend

    if not probe.engine_support()[0]:
        pytest.skip(probe.engine_support()[1])
    x = _frames(3, 32, 48)
    with TensorRTBackend(tiny_model, "fp16", 32, 48, 2, cache_dir=tmp_path) as backend:
        t = torch.from_numpy(x).cuda()
        out = backend.infer_tensor(t)
        assert out.is_cuda and out.dtype == t.dtype and out.shape == t.shape
        half = backend.infer_tensor(t.half())
        assert half.dtype == torch.float16
        assert psnr(out.cpu().numpy(), _ort(tiny_model, x)) > 35.0
        frames = (x.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
        assert backend.infer(frames).shape == frames.shape


def test_auto_prefers_tensorrt_when_it_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import stream_derain.backends as backends

    monkeypatch.setattr(backends, "_torch_cuda", lambda: True)
    monkeypatch.setattr(backends, "_has", lambda m: m in ("torch", "onnxruntime", "tensorrt_rtx"))
    monkeypatch.setattr(probe, "engine_support", lambda: (True, "tensorrt_rtx with RTX 3090 (sm86)"))
    name, why = backends.choose_backend()
    assert name == "tensorrt" and "sm86" in why
    monkeypatch.setattr(probe, "engine_support", lambda: (False, "tensorrt_rtx cannot run on H100"))
    assert backends.choose_backend()[0] == "torch"


def test_activate_without_tensorrt_names_its_extras(tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_derain.backends import tensorrt as trt_backend
    from stream_derain.errors import MissingExtraError

    def no_torch(module: str, extra: str) -> None:
        raise MissingExtraError(module, extra)

    monkeypatch.setattr(probe, "_has", lambda m: False)
    monkeypatch.setattr(trt_backend, "require", no_torch)  # torch missing too: TensorRT is named first
    backend = create_backend("tensorrt", tiny_model, "fp16")
    with pytest.raises(MissingExtraError) as err:
        backend.activate()
    msg = str(err.value)
    assert "[tensorrt]" in msg and "[tensorrt-rtx]" in msg and "[train]" not in msg
    assert "pip install 'stream-derain[tensorrt]' or pip install 'stream-derain[tensorrt-rtx]'" in msg
    with pytest.raises(MissingExtraError, match=r"\[tensorrt\] or \[tensorrt-rtx\] extra"):
        probe.chosen_flavour()
