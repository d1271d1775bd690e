"""Flavour and version probing, compute-capability parsing and targets, profiles."""

from __future__ import annotations

import dataclasses

import pytest

from stream_derain.errors import BackendError, MissingExtraError
from stream_derain.trt import probe
from stream_derain.trt.builder import Profile


@pytest.mark.parametrize("text, cc", [("8.6", (8, 6)), ("86", (8, 6)), ("sm86", (8, 6)), ("SM_89", (8, 9)),
                                      ("12.0", (12, 0)), ("sm120", (12, 0)), ("7.5", (7, 5))])
def test_parse_compute_capability(text: str, cc: tuple[int, int]) -> None:
    assert probe.parse_compute_capability(text) == cc


@pytest.mark.parametrize("text", ["", "ampere", "8.", "sm8x"])
def test_parse_compute_capability_rejects(text: str) -> None:
    with pytest.raises(BackendError, match="not understood"):
        probe.parse_compute_capability(text)


def test_parse_targets_sorted_unique() -> None:
    assert probe.parse_targets("8.9, sm86,8.6") == ((8, 6), (8, 9))
    assert probe.parse_targets(None) == ()


def test_flavour_preference_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(probe.ENV, raising=False)
    monkeypatch.setattr(probe, "_has", lambda m: m in ("tensorrt", "tensorrt_rtx"))
    assert probe.chosen_flavour() == "tensorrt"  # real TensorRT wins when both exist
    monkeypatch.setenv(probe.ENV, "tensorrt_rtx")
    assert probe.chosen_flavour() == "tensorrt_rtx"
    monkeypatch.setenv(probe.ENV, "onnx")
    with pytest.raises(BackendError, match="choose tensorrt or tensorrt_rtx"):
        probe.chosen_flavour()
    monkeypatch.setattr(probe, "_has", lambda m: m == "tensorrt_rtx")
    monkeypatch.setenv(probe.ENV, "tensorrt")
    with pytest.raises(BackendError, match="not installed"):
        probe.chosen_flavour()
    monkeypatch.delenv(probe.ENV)
    assert probe.chosen_flavour() == "tensorrt_rtx"
    monkeypatch.setattr(probe, "_has", lambda m: False)
    with pytest.raises(MissingExtraError):
        probe.chosen_flavour()
    assert probe.engine_support()[0] is False


@pytest.mark.tensorrt
def test_load_reports_flavour_version_features() -> None:
    info = probe.load()
    assert info.flavour in probe.FLAVOURS
    assert info.version[0].isdigit() and info.tag.startswith("trt")
    if info.flavour == "tensorrt_rtx":
        assert info.compute_capability_api and info.builds_without_gpu
        assert not info.fp16_flag and not info.timing_cache  # strongly typed; timing cache is a no-op
        assert info.strongly_typed_flag
    elif info.major >= 11:
        assert not info.fp16_flag
    else:
        assert info.fp16_flag
    assert info.flavour in info.describe()


RTX = probe.GpuInfo("NVIDIA GeForce RTX 3090", (8, 6))
H100 = probe.GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))


@pytest.mark.tensorrt
def test_targets_for_rtx_and_standard_tensorrt() -> None:
    info = probe.load()
    rtx = dataclasses.replace(info, compute_capability_api=True)
    if hasattr(info.trt, "ComputeCapability"):
        assert probe.choose_target(rtx, None, None).tag == probe.PORTABLE  # GPU-less AOT default
        assert probe.choose_target(rtx, None, RTX).tag == "sm86"  # the local GPU
        assert probe.choose_target(rtx, "8.9,sm75", None).tag == "sm75+sm89"
        with pytest.raises(BackendError, match="cannot target compute capability 9.0"):
            probe.choose_target(rtx, None, H100)
    std = dataclasses.replace(info, compute_capability_api=False)
    with pytest.raises(BackendError, match="needs an NVIDIA GPU to build"):
        probe.choose_target(std, None, None)
    assert probe.choose_target(std, None, H100).tag == "sm90-nvidia-h100-80gb-hbm3"
    with pytest.raises(BackendError, match="only for the local GPU"):
        probe.choose_target(std, "8.6", H100)


def test_engine_support_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(probe.ENV, raising=False)
    monkeypatch.setattr(probe, "_has", lambda m: m in ("torch", "tensorrt_rtx"))
    monkeypatch.setattr(probe, "gpu_info", lambda: None)
    ok, why = probe.engine_support()
    assert not ok and "no CUDA GPU" in why
    monkeypatch.setattr(probe, "gpu_info", lambda: H100)
    ok, why = probe.engine_support()
    assert not ok and "install tensorrt" in why
    monkeypatch.setattr(probe, "gpu_info", lambda: RTX)
    assert probe.engine_support() == (True, "tensorrt_rtx with NVIDIA GeForce RTX 3090 (sm86)")


def test_profile_from_resolution() -> None:
    p = Profile.for_resolution(1080, 1920, max_batch=4, multiple=4)
    assert p.max == (4, 1080, 1920) and p.opt == p.max and p.min == (1, 16, 16)
    assert p.covers(1, 720, 1280) and not p.covers(5, 720, 1280) and not p.covers(1, 1088, 1920)
    odd = Profile.for_resolution(270, 481, max_batch=1, multiple=8, dynamic=False)
    assert odd.min == odd.max == (1, 272, 488)
    assert p.tag == "n1-4-4.h16-1080-1080.w16-1920-1920"
    assert p.shapes()[0] == (1, 3, 16, 16)
    with pytest.raises(BackendError):
        Profile.for_resolution(0, 10)
