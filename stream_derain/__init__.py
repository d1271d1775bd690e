"""stream-derain: remove rain from video files, images and live streams.

Library first: ``stream_derain.derain.derain(DerainConfig(input=..., output=...))``
does what the ``stream-derain derain`` command does. Heavy modules (PyAV, ONNX
Runtime, torch, TensorRT) are imported only by the submodules that use them.
"""

from __future__ import annotations

from .errors import StreamDerainError

__version__ = "0.1.0"
__all__ = ["StreamDerainError", "__version__"]
