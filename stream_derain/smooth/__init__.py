"""Temporal-consistency smoothing of per-frame derained video.

- :class:`TemporalSmoother` (``cpu.py``): numpy + OpenCV, HxWx3 uint8 RGB frames.
- :class:`TorchTemporalSmoother` (``gpu.py``): the same filter with the full-resolution
  warp and blend in torch (3xHxW tensors on any device, e.g. CUDA); imported lazily,
  torch is the optional ``[train]`` extra.
- :func:`make_smoother`: one of the two for a device string.

Both share :mod:`.core` (flow, confidence and scene cuts at low resolution on the CPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core import DEFAULT_STRENGTH, SmootherConfig
from .cpu import TemporalSmoother

if TYPE_CHECKING:
    from .gpu import TorchTemporalSmoother

__all__ = ["DEFAULT_STRENGTH", "SmootherConfig", "TemporalSmoother", "TorchTemporalSmoother", "make_smoother"]


def make_smoother(strength: float, device: str = "cpu",
                  **tuning: float) -> TemporalSmoother | TorchTemporalSmoother:
    """A smoother for frames on ``device``: 'cpu' gives the numpy/OpenCV one (HxWx3 uint8
    numpy frames); anything else ('cuda', 'cuda:1', 'torch-cpu') gives the torch one on that
    device (3xHxW tensors), 'torch-cpu' meaning torch on the CPU."""
    if device == "cpu":
        return TemporalSmoother(strength, **tuning)
    from .gpu import TorchTemporalSmoother

    return TorchTemporalSmoother(strength, device="cpu" if device == "torch-cpu" else device, **tuning)


def __getattr__(name: str) -> Any:
    if name == "TorchTemporalSmoother":
        from .gpu import TorchTemporalSmoother

        return TorchTemporalSmoother
    raise AttributeError(name)
