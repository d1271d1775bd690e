"""CPU feature detection and the ``--backend auto`` order."""

from __future__ import annotations

from pathlib import Path

import pytest

import stream_derain.backends as backends
from stream_derain.devices import cpu_from_text, cpu_info, parse_cpuinfo
from stream_derain.errors import BackendError

SPR = "vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n" \
      "flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8\n" \
      "model name\t: second core, ignored\n"
GNR = "model name: Intel Xeon 6980P\nflags: avx2 avx512f avx512_bf16 amx_bf16 amx_fp16\n"
MILAN = "vendor_id: AuthenticAMD\nmodel name: AMD EPYC 7B13\nflags: fpu sse avx avx2 fma\n"
GRAVITON = "processor: 0\nFeatures: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\n"


def test_parse_keeps_the_first_value() -> None:
    assert parse_cpuinfo(SPR)["model name"] == "Intel(R) Xeon(R) Platinum 8480+"


@pytest.mark.parametrize("text, native", [(SPR, ["bf16", "fp32"]), (GNR, ["fp16", "bf16", "fp32"]),
                                          (MILAN, ["fp32"]), (GRAVITON, ["fp16", "fp32"])])
def test_native_precisions(text: str, native: list[str]) -> None:
    cpu = cpu_from_text(text, arch="x86_64")
    assert cpu.native_precisions() == native
    assert cpu.has("avx2") == ("avx2" in text)


def test_this_machine_is_read() -> None:
    cpu = cpu_info()
    assert cpu.native_precisions()[-1] == "fp32" and cpu.arch
    reason = cpu.precision_reason("bf16").lower().replace("-", "_")
    units = [u for u in ("amx_bf16", "avx512_bf16") if cpu.has(u)]  # AMD Zen 4 has the second only
    assert all(u in reason for u in units) if units else "no bf16" in reason
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    if " avx2" in flags:  # what the kernel reports is what was read
        assert cpu.has("avx2")


@pytest.mark.parametrize("present, expected", [
    (("openvino", "onnxruntime", "torch"), "openvino"),
    (("onnxruntime", "torch"), "onnxruntime"),
    (("torch",), "torch"),
])
def test_auto_without_gpu_prefers_the_fastest_cpu_backend(monkeypatch, present, expected) -> None:  # noqa: ANN001
    monkeypatch.setattr(backends, "_torch_cuda", lambda: False)
    monkeypatch.setattr(backends, "_has", lambda m: m in present)
    name, why = backends.choose_backend()
    assert name == expected and "GPU" in why
    if expected == "onnxruntime":
        assert "stream-derain[openvino]" in why  # says how to get the faster one


def test_auto_with_gpu_still_prefers_cuda(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(backends, "_torch_cuda", lambda: True)
    monkeypatch.setattr(backends, "_has", lambda m: m in ("openvino", "onnxruntime", "torch"))
    assert backends.choose_backend()[0] == "torch"


def test_auto_with_nothing_installed(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(backends, "_torch_cuda", lambda: False)
    monkeypatch.setattr(backends, "_has", lambda m: False)
    with pytest.raises(BackendError, match="no backend installed"):
        backends.choose_backend()


def test_auto_precision_is_chosen_by_the_cpu_backends_only() -> None:
    assert backends.resolve_precision("onnxruntime", "auto") == "auto"  # int8 or fp32, at activation
    assert backends.resolve_precision("openvino", "auto") == "auto"
    assert backends.resolve_precision("torch", "auto") == "fp32"
    assert backends.resolve_precision("torch", "fp16") == "fp16"


@pytest.mark.parametrize("text, units", [
    (SPR, ["amx_int8"]), (GNR, []), (MILAN, []), (GRAVITON, []),
    ("model name: AMD EPYC 9R14\nflags: avx2 avx512f avx512_vnni avx512_bf16\n", ["avx512_vnni"]),
    ("model name: Core i7-12700\nflags: avx2 avx_vnni\n", ["avx_vnni"]),
    ("processor: 0\nFeatures: fp asimd asimddp i8mm\n", ["neon_i8mm", "neon_dotprod"])])
def test_int8_units(text: str, units: list[str]) -> None:
    cpu = cpu_from_text(text, arch="x86_64")
    assert cpu.int8_units() == units and cpu.int8_dot == bool(units)
    reason = cpu.precision_reason("int8")
    assert ("8-bit dot products in hardware" in reason) if units else ("no 8-bit dot-product units" in reason)
    assert "int8" not in cpu.native_precisions()


def test_cuda_torch_only_for_cuda_devices() -> None:
    from stream_derain import devices

    assert devices.cuda_torch("cpu") is None
    torch = devices.cuda_torch("cuda")
    assert torch is None or torch.cuda.is_available()


def test_nvidia_gpus_without_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_derain import devices
    from stream_derain.bench import machine

    monkeypatch.setattr(devices, "nvidia_driver_present", lambda: False)
    assert devices.nvidia_gpus() == [] and machine.gpu_info() == []


def test_nvidia_gpus_from_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_derain import devices

    monkeypatch.setattr(devices, "nvidia_driver_present", lambda: True)
    monkeypatch.setattr(devices, "_run", lambda cmd: "NVIDIA H200, 570.1, 143771 MiB")
    assert devices.nvidia_gpus() == [{"name": "NVIDIA H200", "driver": "570.1", "memory": "143771 MiB",
                                      "source": "nvidia-smi"}]
