"""The backend interface: activate / infer / deactivate, used as a context manager.

``infer`` takes a batch of frames as NxHxWx3 uint8 RGB numpy arrays of any size and
returns the derained NxHxWx3; a multi-frame model (``model.frames`` K > 1) takes
NxHxWx(3K), the K frames of each window concatenated on the last axis in slot order
(slot 0 the target, see :mod:`stream_derain.window`). The base class pads H and W up to the
model's multiple (by reflection, see :func:`pad_mode`) and crops the result back, so
subclasses only implement :meth:`run`, which sees Nx(3K)xHxW float32 in [0, 1] with
aligned sizes and returns Nx3xHxW. A backend class declares what it can do in
:attr:`Backend.capabilities` (:class:`Capabilities`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from ..catalog import ModelInfo
from ..errors import BackendError, InputError

log = logging.getLogger(__name__)


def pad_amounts(h: int, w: int, multiple: int) -> tuple[int, int]:
    return (-h) % multiple, (-w) % multiple


def pad_mode(h: int, w: int, ph: int, pw: int) -> str:
    """How to pad an h x w frame by ph rows and pw columns: by reflection, torch's and
    numpy's ``reflect``, where the frame is large enough, else by edge replication.
    Replicated edges are constant stripes, which the student reads as streaks: through
    its squeeze-and-excitation gates (global means) 15 such rows and columns changed
    the brightness removed across a whole 321x481 heavy25 frame from 23.9 to 18.1
    levels; reflection, 22.0."""
    return "reflect" if ph < h and pw < w else "edge"


def pad_tensor(x: Any, ph: int, pw: int) -> Any:
    """NxCxHxW torch tensor padded by ph rows and pw columns at the bottom and right, as
    :func:`pad_mode` says (torch's name for edge replication is ``replicate``)."""
    if not (ph or pw):
        return x
    from torch.nn import functional as F

    mode = {"reflect": "reflect", "edge": "replicate"}[pad_mode(x.shape[2], x.shape[3], ph, pw)]
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def to_nchw(batch: np.ndarray, multiple: int) -> np.ndarray:
    """NxHxWxC uint8 -> NxCxH'xW' float32 in [0, 1], padded to ``multiple`` (:func:`pad_mode`)."""
    h, w = batch.shape[1:3]
    ph, pw = pad_amounts(h, w, multiple)
    if ph or pw:
        batch = np.pad(batch, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=pad_mode(h, w, ph, pw))
    # one channel plane at a time: a K-frame window (C = 3K) transposed whole is a strided
    # gather 6x slower (640x360, C = 15: 32 ms against 5 ms; C = 3: the same 1.4 ms)
    n, hp, wp, c = batch.shape
    out = np.empty((n, c, hp, wp), np.float32)
    for i in range(c):
        np.multiply(batch[..., i], np.float32(1 / 255), out=out[:, i], dtype=np.float32)
    return out


def to_nhwc_uint8(out: np.ndarray, h: int, w: int) -> np.ndarray:
    """NxCxH'xW' float in [0, 1] -> NxHxWxC uint8, cropped to h x w."""
    out = out[:, :, :h, :w].transpose(0, 2, 3, 1)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def model_frames(backend: Any) -> int:
    """K, the frames of the window ``backend``'s model reads (1 for a single-frame model,
    or a stand-in backend without a model)."""
    return int(getattr(getattr(backend, "model", None), "frames", 1))


def check_batch(batch: np.ndarray, channels: int = 3) -> None:
    """InputError unless ``batch`` is NxHxWx``channels`` uint8 (3K for a K-frame model)."""
    if batch.ndim != 4 or batch.shape[3] != channels or batch.dtype != np.uint8:
        frames = f" (a {channels // 3}-frame window: the frames on the last axis)" if channels != 3 else ""
        raise InputError(f"expected NxHxWx{channels} uint8 frames{frames}, got {batch.shape} {batch.dtype}")


@dataclass(frozen=True)
class Capabilities:
    """What a backend class can do, readable without activating it (nor importing its library).

    ``precisions``: what ``precision`` may be; ``device_tensors``: :meth:`Backend.infer_tensor`
    takes Nx(3K)xHxW tensors on the backend's device (the pipeline then keeps frames there
    when that device is a GPU); ``batching``: :meth:`Backend.infer` runs N > 1 frames in
    one call (not one at a time); ``dynamic_shapes``: any frame size without a rebuild."""

    precisions: tuple[str, ...] = ("fp32",)
    device_tensors: bool = False
    batching: bool = True
    dynamic_shapes: bool = True


class Backend(ABC):
    """One inference engine for one model. Use ``with backend: backend.infer(frames)``."""

    name: str = "backend"
    capabilities: ClassVar[Capabilities] = Capabilities()

    chosen_because = ""  # why ``--backend auto`` chose this backend (set by create_backend)

    def __init__(self, model: ModelInfo, precision: str = "fp32") -> None:
        self.model = model
        self.precision = precision
        self.active = False

    @property
    def device(self) -> str:
        return "cpu"

    def describe(self) -> str:
        return f"{self.name} ({self.precision}, {self.device})"

    def summary(self) -> str:
        """The run's one log line: which model runs on what, and why (``-v`` logs the
        precision's reasoning too)."""
        m = self.model
        window = f", {m.frames} frames" if m.frames > 1 else ""
        why = f"; {self.chosen_because}" if self.chosen_because else ""
        return f"model {m.name} v{m.version}{window} on {self.describe()}{why}"

    @abstractmethod
    def activate(self) -> None:
        """Load the model / create sessions. Expensive; called once."""

    def deactivate(self) -> None:
        """Release sessions and device memory."""
        self.active = False

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """Nx(3K)xHxW float32 in [0, 1] (aligned; K = ``model.frames``) -> Nx3xHxW float in [0, 1]."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """NxHxWx3 uint8 RGB (NxHxWx(3K): K-frame windows) -> derained NxHxWx3 uint8 RGB
        of the same size."""
        if not self.active:
            raise BackendError(f"{self.name} backend used before activate()")
        check_batch(batch, self.model.channels)
        h, w = batch.shape[1:3]
        return to_nhwc_uint8(self.run(to_nchw(batch, self.model.multiple)), h, w)

    def infer_tensor(self, x: Any) -> Any:
        """Nx(3K)xHxW tensor in [0, 1] on :attr:`device` (H, W multiples of ``model.multiple``;
        K = ``model.frames``) -> the derained Nx3xHxW tensor; only where ``capabilities.device_tensors``."""
        raise BackendError(f"the {self.name} backend does not take device tensors")

    def __enter__(self) -> Backend:
        self.activate()
        self.active = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.deactivate()
