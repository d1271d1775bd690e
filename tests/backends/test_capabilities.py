"""Backends declare what they can do (``Backend.capabilities``) instead of being probed."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

from stream_derain.backends import PRECISIONS
from stream_derain.backends.base import Backend, Capabilities
from stream_derain.errors import BackendError
from stream_derain.stages import uses_device_frames

CLASSES = {"onnxruntime": ("onnxruntime", "OnnxRuntimeBackend"), "openvino": ("openvino", "OpenVINOBackend"),
           "torch": ("torch", "TorchBackend"), "tensorrt": ("tensorrt", "TensorRTBackend")}


def backend_class(name: str) -> type[Backend]:
    module, cls = CLASSES[name]
    return getattr(importlib.import_module(f"stream_derain.backends.{module}"), cls)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_declared_precisions_match_the_registry(name: str) -> None:
    caps = backend_class(name).capabilities
    assert isinstance(caps, Capabilities)
    assert set(caps.precisions) - {"auto"} == set(PRECISIONS[name])


def test_registry_is_read_lazily_from_the_classes() -> None:
    code = """
import sys
import stream_derain, stream_derain.backends as b
mods = [f'stream_derain.backends.{m}' for m, _ in b.CLASSES.values()]
assert not any(m in sys.modules for m in mods), 'a backend module imported with the package'
assert sorted(b.PRECISIONS) == sorted(b.CLASSES) and len(b.PRECISIONS) == 4
assert b.PRECISIONS['openvino'] == ('fp32', 'bf16', 'fp16', 'int8'), b.PRECISIONS['openvino']
assert b.PRECISIONS['onnxruntime'] == ('fp32', 'fp16', 'int8'), b.PRECISIONS['onnxruntime']
assert dict(b.PRECISIONS)['tensorrt'] == ('fp32', 'fp16') and b.PRECISIONS.get('nope') is None
libs = [m for m in ('tensorrt', 'tensorrt_rtx', 'openvino', 'onnxruntime', 'torch') if m in sys.modules]
assert not libs, libs
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_device_tensor_backends() -> None:
    assert {n for n in CLASSES if backend_class(n).capabilities.device_tensors} == {"torch", "tensorrt"}


class Fake(Backend):
    name = "fake"

    def __init__(self, device: str, tensors: bool) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self._device = device
        self.capabilities = Capabilities(device_tensors=tensors)  # type: ignore[misc]

    @property
    def device(self) -> str:
        return self._device

    def activate(self) -> None:
        pass

    def run(self, x: np.ndarray) -> np.ndarray:
        return x


def test_device_frames_follow_the_declared_capability() -> None:
    assert uses_device_frames(Fake("cuda:0", True))
    assert not uses_device_frames(Fake("cpu", True))  # a device-tensor backend on the CPU: host frames
    assert not uses_device_frames(Fake("cuda", False))
    assert uses_device_frames(Fake("cpu", True), requested=True)
    assert not uses_device_frames(Fake("cuda", True), requested=False)
    with pytest.raises(BackendError, match="device tensors"):
        Fake("cpu", False).infer_tensor(None)
