"""torch backend: the student's ONNX weights run as a torch module (CPU or CUDA).

torch is an optional extra; the module is imported lazily. The weights come from
the ONNX file itself (its initialisers are the student's state dict), so the torch
and ONNX Runtime backends always run the same model.
"""

from __future__ import annotations

import logging

import numpy as np

from ..catalog import ModelInfo
from ..devices import cuda_torch
from ..errors import BackendError, ModelError, require
from .base import Backend, Capabilities

log = logging.getLogger(__name__)


def build_network(model: ModelInfo):  # noqa: ANN201 - nn.Module
    """The untrained torch network the manifest describes: the student (``"student"``:
    its config), or for a K-frame model the temporal student (``"temporal"``: its
    ``TemporalConfig`` as a dict, else ``"student"`` with ``"frames"`` and ``"kernel"``)."""
    cfg = model.meta.get("student")
    temporal = model.meta.get("temporal")
    if model.frames > 1 or isinstance(temporal, dict):
        from ..model.temporal import build_temporal

        if isinstance(temporal, dict):
            return build_temporal(**temporal)
        if cfg is not None:
            return build_temporal(cfg, model.frames, int(model.meta.get("kernel", 1)))
    if cfg is None:
        raise ModelError(f"model {model.name} has no 'student' entry in the manifest; "
                         "the torch backend needs one")
    from ..model.student import build_student

    return build_student(**cfg)


def load_student_from_onnx(model: ModelInfo, precision: str = "fp32"):  # noqa: ANN201 - nn.Module
    """Rebuild the torch student described in the manifest and load the ONNX weights."""
    torch = require("torch", "train")
    onnx = require("onnx", "train")
    from onnx import numpy_helper

    net = build_network(model)
    graph = onnx.load(str(model.path("fp32"))).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    state = {k: torch.from_numpy(weights[k].copy()) for k in net.state_dict() if k in weights}
    # what the graph leaves out keeps its initialisation (the frozen zeros it was trained with)
    missing = sorted(k for k in set(net.state_dict()) - set(state)
                     if not k.startswith(getattr(net, "outside_graph", ())))
    if missing:
        raise ModelError(f"{model.path('fp32')} does not hold the student's weights (missing {missing[0]})")
    net.load_state_dict(state, strict=False)
    return net.eval()


class TorchBackend(Backend):
    name = "torch"
    capabilities = Capabilities(precisions=("fp32", "fp16"), device_tensors=True)

    def __init__(self, model: ModelInfo, precision: str = "fp32", device: str = "auto") -> None:
        super().__init__(model, precision)
        self.requested_device = device
        self.net = None

    @property
    def device(self) -> str:
        return str(self._device) if self.net is not None else self.requested_device

    def activate(self) -> None:
        torch = require("torch", "train")
        dev = self.requested_device
        if dev == "auto":
            dev = "cuda" if cuda_torch() is not None else "cpu"
        if dev.startswith("cuda") and cuda_torch(dev) is None:
            raise BackendError("torch backend asked for CUDA, but torch sees no GPU")
        self._device = torch.device(dev)
        if self.precision == "fp16" and self._device.type != "cuda":
            raise BackendError("fp16 with the torch backend needs a CUDA device")
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.net = load_student_from_onnx(self.model).to(self._device, dtype)
        self._dtype = dtype
        if self._device.type == "cuda":
            self.net = self.net.to(memory_format=torch.channels_last)

    def deactivate(self) -> None:
        self.net = None
        super().deactivate()

    def infer_tensor(self, x):  # noqa: ANN001,ANN201 - torch tensors
        """Nx(3K)xHxW tensor in [0, 1] on this backend's device (H, W multiples of
        ``model.multiple``; K = ``model.frames``) -> derained Nx3xHxW tensor of the same
        dtype, no host copy."""
        torch = require("torch", "train")
        with torch.inference_mode():
            return self.net(x.to(self._device, self._dtype)).to(x.dtype)

    def run(self, x: np.ndarray) -> np.ndarray:
        torch = require("torch", "train")
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self._device, self._dtype)
            return self.net(t).float().cpu().numpy()
